"""A chat's own layer over the shared model: what the chat wrote, counted at once, used to answer
that chat alone.

The layer keeps, per direction, how often each word followed each context (the last 1 to N-1
tokens) in the chat's text. A chat's model mixes it with the shared model as a cache model
does (Kuhn & De Mori 1990; MacKay & Peto's Dirichlet prior):

    p_chat(w | c) = (n(c w) + PRIOR * p_shared(w | c)) / (n(c) + PRIOR)

where c is the context's tail as the model reads it. A context the chat never used is answered
by the shared model alone; one it used often leans on what the chat said next. The layer is
changed by the learning thread only; replies read it with single dict look-ups and one-call
copies (atomic under the GIL), so they never see a half-changed dict.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from engines.ngram.model import LanguageModel
from engines.ngram.people import rarest
from engines.ngram.verbatim import CopyGuard
from engines.ngram.vocab import BOS, EOS

# The shared model's weight, in counts: after a context the chat used once, what the chat wrote
# next gets 1/3 of the mass (plus its shared share); after ten uses, 10/12.
PRIOR = 2.0

Context = tuple[int, ...]


class Predictor(Protocol):
    """What the reply search, /next and /probe ask of a model."""

    vocab_size: int

    def prob_of(self, context: Sequence[int], word: int) -> float: ...

    def sample(self, context: Sequence[int], rng: random.Random, seen: bool = False) -> int: ...

    def distribution(self, context: Sequence[int]) -> np.ndarray: ...

    def knows(self, word: int) -> bool: ...


class Guard(Protocol):
    """What the reply search asks of a copy check."""

    def copies(self, sentence: Sequence[int]) -> bool: ...


class Followers:
    """context -> {word: times it followed} (a context's total is summed when asked: one C
    call over a few words, and nothing to keep consistent)."""

    def __init__(self, order: int) -> None:
        self.order = order
        self.next: dict[Context, dict[int, int]] = {}
        self.entries = 0

    def add(self, padded: Sequence[int], sign: int) -> None:
        """Count (sign 1) or take back (sign -1) one sentence, <s> and </s> included."""
        for i in range(1, len(padded)):
            word = padded[i]
            for length in range(1, min(i, self.order - 1) + 1):
                self._change(tuple(padded[i - length:i]), word, sign)

    def _change(self, context: Context, word: int, sign: int) -> None:
        words = self.next.get(context)
        if words is None:
            if sign < 0:
                return
            words = self.next[context] = {}
        times = words.get(word, 0) + sign
        if times > 0:
            self.entries += word not in words
            words[word] = times
        elif word in words:
            del words[word]
            self.entries -= 1
            if not words:
                del self.next[context]

    def prune(self, wanted: int, at_most: int) -> int:
        """Drop up to `wanted` entries seen `at_most` times or fewer, oldest contexts first
        (a context passed over goes to the back, as in people.rarest)."""
        gone: list[tuple[Context, int, int]] = []
        contexts = rarest(self.next, lambda words: min(words.values()) <= at_most, wanted)
        for context in contexts:
            rare = [(context, w, n) for w, n in self.next[context].items() if n <= at_most]
            gone += rare[:wanted - len(gone)]
        for context, word, times in gone:
            self._change(context, word, -times)
        return len(gone)


class ChatLayer:
    """One chat's counts in both directions and the runs of tokens it wrote (for the copy
    check), each bounded by the engine's pruning."""

    def __init__(self, order: int, copy_span: int) -> None:
        self.forward = Followers(order)
        self.backward = Followers(order)
        self.copy_span = copy_span
        self.windows: Counter[int] = Counter()  # hashes of its runs of copy_span tokens
        self.words: Counter[int] = Counter()

    @property
    def entries(self) -> int:
        return (self.forward.entries + self.backward.entries + len(self.windows)
                + len(self.words))

    def add(self, sentence: Sequence[int], sign: int = 1) -> None:
        self.forward.add((BOS, *sentence, EOS), sign)
        self.backward.add((BOS, *reversed(sentence), EOS), sign)
        _change(self.windows, windows(sentence, self.copy_span), sign)
        _change(self.words, sentence, sign)

    def prune(self, wanted: int, at_most: int) -> int:
        """Up to `wanted` entries seen `at_most` times or fewer, from each part in proportion
        to its size (so that each keeps its newest), the oldest of each first."""
        gone, entries = 0, max(self.entries, 1)
        for part in (self.forward, self.backward):
            gone += part.prune(share(wanted, part.entries, entries, up=True), at_most)
        for counter in (self.windows, self.words):
            for key in rarest(counter, lambda n: n <= at_most,
                              share(wanted, len(counter), entries, up=True)):
                del counter[key]
                gone += 1
        return gone


def windows(sentence: Sequence[int], span: int) -> list[int]:
    """Each run of `span` tokens of `<s> sentence </s>` as one hash (Python's, of a tuple of
    ints: the same in every thread of the process, and cheaper than numpy for one sentence)."""
    padded = (BOS, *sentence, EOS)
    return [hash(padded[i:i + span]) for i in range(len(padded) - span + 1)]


def share(wanted: int, size: int, total: int, up: bool = False) -> int:
    """A part's share of `wanted`, in proportion to its size, rounded down (a part too small
    for a share is not visited) or up (every part gives something)."""
    return -(-wanted * size // max(total, 1)) if up else wanted * size // max(total, 1)


def _change(counter: Counter[int], keys: Sequence[int], sign: int) -> None:
    for key in keys:
        left = counter[key] + sign
        if left > 0:
            counter[key] = left
        else:
            counter.pop(key, None)


class ChatModel:
    """The shared model with a chat's layer over it (see the module's docstring)."""

    def __init__(self, shared: LanguageModel, layer: Followers, words: Counter[int]) -> None:
        self.shared = shared
        self.layer = layer
        self.words = words
        self.vocab_size = shared.vocab_size
        self._tail = 1 - shared.order

    def _followers(self, context: Sequence[int]) -> dict[int, int] | None:
        if self._tail == 0:
            return None
        return self.layer.next.get(tuple(context[self._tail:]))

    def prob_of(self, context: Sequence[int], word: int) -> float:
        p = self.shared.prob_of(context, word)
        follow = self._followers(context)
        if not follow:
            return p
        total = sum(follow.values())  # one C call, consistent with the counts read
        return (follow.get(word, 0) + PRIOR * p) / (total + PRIOR)

    def sample(self, context: Sequence[int], rng: random.Random, seen: bool = False) -> int:
        follow = self._followers(context)
        if follow:
            items = tuple(follow.items())
            total = sum(n for _, n in items)
            if rng.random() * (total + PRIOR) < total:
                running = list(itertools.accumulate(n for _, n in items))
                return items[bisect.bisect_right(running, rng.random() * total)][0]
        return self.shared.sample(context, rng, seen)

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        p = self.shared.distribution(context)
        follow = self._followers(context)
        if not follow:
            return p
        items = tuple(follow.items())
        if not items:  # emptied by the learning thread meanwhile
            return p
        total = sum(n for _, n in items)
        out = np.zeros(max(len(p), max(w for w, _ in items) + 1))
        out[:len(p)] = p * (PRIOR / (total + PRIOR))
        for word, times in items:
            out[word] += times / (total + PRIOR)
        return out

    def knows(self, word: int) -> bool:
        return word in self.words or self.shared.knows(word)


class ChatGuard:
    """The shared copy check, and the chat's own runs of tokens."""

    def __init__(self, shared: CopyGuard, windows: Counter[int]) -> None:
        self.shared = shared
        self.windows = windows

    def copies(self, sentence: Sequence[int]) -> bool:
        if self.shared.copies(sentence):
            return True
        return any(h in self.windows for h in windows(sentence, self.shared.span))


def with_layer(shared: tuple[LanguageModel, LanguageModel], guard: CopyGuard,
               layer: ChatLayer) -> tuple[ChatModel, ChatModel, ChatGuard]:
    forward, backward = shared
    return (ChatModel(forward, layer.forward, layer.words),
            ChatModel(backward, layer.backward, layer.words),
            ChatGuard(guard, layer.windows))
