"""k-anonymous counting: the word sequences people wrote, and who wrote each how often.

A sentence `<s> w1 .. wn </s>` holds, for a model of order N, every N-gram inside it and, for
each shorter order k >= 2, its first and its last k tokens (what KenLM's counts keep: see
counts.py; the last ones are the backward model's sentence starts). Those are its sequences.
A sequence enters the shared model (the one that answers every chat) once `k` distinct people
wrote it, and counts there as the number of its writers: one person repeating it a hundred
times is still one person. Withdrawing a person's text subtracts what it added; a sequence
that falls below `k` writers leaves the shared model again.

Everything here runs on one thread at a time (the engine's learning thread); `admitted` is
read by the estimation thread as a copy, taken in one C-level call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from engines.ngram.counts import Table
from engines.ngram.rows import ROW_DTYPE, unique_rows
from engines.ngram.vocab import BOS, EOS

Key = tuple[int, ...]


def sequences(sentence: Sequence[int], order: int) -> Iterable[Key]:
    """The sequences of one sentence (word ids, no <s> or </s>), as counted for `order`."""
    padded = (BOS, *sentence, EOS)
    for start in range(len(padded) - order + 1):
        yield padded[start:start + order]
    for k in range(2, min(order, len(padded) + 1)):
        yield padded[:k]
        if padded[-k:] != padded[:k]:  # the whole sentence is its first and last k tokens
            yield padded[-k:]


class PeopleCounts:
    def __init__(self, order: int, k_people: int) -> None:
        self.order = order
        self.k_people = k_people
        # sequence -> {person: times written}; insertion order: oldest first (for pruning)
        self.writers: dict[Key, dict[int, int]] = {}
        self.admitted: dict[Key, int] = {}  # sequences with >= k_people writers -> writers
        self.changed = False  # `admitted` changed since the models were last estimated
        self.left = False  # ... and a sequence left it (fell below k writers)

    def __len__(self) -> int:
        return len(self.writers)

    def add(self, person: int, found: Counter[Key]) -> None:
        for key, times in found.items():
            who = self.writers.get(key)
            if who is None:
                who = self.writers[key] = {}
            before = len(who)
            who[person] = who.get(person, 0) + times
            if len(who) > before and len(who) >= self.k_people:
                self.admitted[key] = len(who)
                self.changed = True

    def subtract(self, person: int, found: Counter[Key]) -> None:
        for key, times in found.items():
            who = self.writers.get(key)
            if who is None or person not in who:
                continue
            left = who[person] - times
            if left > 0:
                who[person] = left
                continue
            del who[person]
            self._recount(key, who)

    def forget_person(self, person: int, keys: Iterable[Key]) -> None:
        """Drop `person` from these sequences whatever the counts say (all their text went)."""
        for key in keys:
            who = self.writers.get(key)
            if who is not None and who.pop(person, None) is not None:
                self._recount(key, who)

    def _recount(self, key: Key, who: dict[int, int]) -> None:
        if not who:
            del self.writers[key]
        if key in self.admitted:
            if len(who) >= self.k_people:
                self.admitted[key] = len(who)
            else:
                del self.admitted[key]
                self.left = True
            self.changed = True

    def prune(self, wanted: int, at_most: int) -> int:
        """Drop up to `wanted` sequences written `at_most` times or fewer in all, the oldest
        first; returns how many went."""
        gone = rarest(self.writers, lambda who: sum(who.values()) <= at_most, wanted)
        for key in gone:
            del self.writers[key]
            if self.admitted.pop(key, None) is not None:
                self.changed = True
        return len(gone)


def rarest(found: dict, rare: Callable[[Any], bool], wanted: int) -> list:
    """The first `wanted` keys whose value is `rare`, oldest first. The keys passed over on
    the way go to the back (a dict keeps insertion order), so the next scan does not pass
    over them again: among equals, what was passed over last goes last."""
    gone: list = []
    passed: list = []
    if wanted <= 0:
        return gone
    for key, value in found.items():
        if rare(value):
            gone.append(key)
            if len(gone) >= wanted:
                break
        else:
            passed.append(key)
    for key in passed:
        found[key] = found.pop(key)
    return gone


def tables(admitted: dict[Key, int], order: int) -> tuple[dict[int, Table], dict[int, Table]]:
    """The admitted sequences as count tables (forward, backward), shaped like counts.py's:
    order N: every N-gram; k < N: sentence-initial k-grams (the backward ones reversed)."""
    kept = [*range(2, order), order]
    forward: dict[int, list[tuple[Key, int]]] = {k: [] for k in kept}
    backward: dict[int, list[tuple[Key, int]]] = {k: [] for k in kept}
    for key, people in admitted.items():
        k = len(key)
        if k == order:
            forward[k].append((key, people))
            backward[k].append((key[::-1], people))
            continue
        if key[0] == BOS:
            forward[k].append((key, people))
        if key[-1] == EOS:
            backward[k].append((key[::-1], people))
    return ({k: _table(rows, k) for k, rows in forward.items()},
            {k: _table(rows, k) for k, rows in backward.items()})


def _table(rows: list[tuple[Key, int]], k: int) -> Table:
    if not rows:
        return np.zeros((0, k), ROW_DTYPE), np.zeros(0, np.int64)
    keys = np.array([key for key, _ in rows], ROW_DTYPE).reshape(len(rows), k)
    return unique_rows(keys, np.array([n for _, n in rows], np.float64))
