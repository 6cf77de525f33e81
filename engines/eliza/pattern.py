"""Decomposition (matching a pattern against the words) and reassembly (building the answer).

A pattern is matched as the 1966 program's YMATCH did: each 0 takes as few words as it can,
the leftmost first, as long as the rest of the pattern still matches. Every other element
takes a fixed number of words, so the 0s cut a pattern into fixed-width runs: the first run
must sit at the start, the last at the end, and each run between is placed at the leftmost
position after the one before it where it fits. Leftmost placements end as early as possible,
so they leave the most room to what follows: if any match exists they find one, and it is the
one where each 0 took the fewest words. That is linear in the number of words times the length
of the pattern, so a 10,000-character message cannot make a match take long.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from engines.eliza.script import Element, Piece


@dataclass(frozen=True)
class _Run:
    """Elements between two 0s, each a fixed number of words wide."""

    width: int  # words it covers
    spans: tuple[tuple[int, int], ...]  # each element's words: from, to (from the run's start)
    checks: tuple[tuple[int, Element], ...]  # (offset, element) of those that test a word


def decompose(
    pattern: Sequence[Element], words: Sequence[str], tags: Mapping[str, frozenset[str]]
) -> list[list[str]] | None:
    """The words split into one part per pattern element, or None if the pattern fails."""
    runs = _runs(tuple(pattern))
    words = words if isinstance(words, list) else list(words)
    starts = _place(runs, words, tags)
    if starts is None:
        return None
    parts = [words[a:b] for a, b in runs[0].spans]
    end = runs[0].width
    for run, start in zip(runs[1:], starts[1:], strict=True):
        parts.append(words[end:start])  # the 0 before this run takes what lies between
        parts += [words[start + a:start + b] for a, b in run.spans]
        end = start + run.width
    return parts


@cache
def _runs(pattern: tuple[Element, ...]) -> tuple[_Run, ...]:
    """The runs between the pattern's 0s (as many as 0s plus one; some may be empty)."""
    runs: list[list[Element]] = [[]]
    for element in pattern:
        if element == 0:
            runs.append([])
        else:
            runs[-1].append(element)
    return tuple(_run(run) for run in runs)


def _run(elements: list[Element]) -> _Run:
    sizes = [e if isinstance(e, int) else 1 for e in elements]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    spans = tuple((offset, offset + size) for offset, size in zip(offsets, sizes, strict=True))
    checks = tuple((offset, e) for offset, e in zip(offsets, elements, strict=True)
                   if not isinstance(e, int))
    return _Run(sum(sizes), spans, checks)


def _place(
    runs: tuple[_Run, ...], words: list[str], tags: Mapping[str, frozenset[str]]
) -> list[int] | None:
    """Where each run starts: the first at 0, the last ending at the last word, the others
    leftmost after the one before; None if they do not fit."""
    count = len(words)
    first, last = runs[0], runs[-1]
    if len(runs) == 1:
        return [0] if first.width == count and _fits_at(first, words, 0, tags) else None
    last_start = count - last.width
    if last_start < first.width or (first.checks and not _fits_at(first, words, 0, tags)):
        return None
    starts, at = [0], first.width
    for run in runs[1:-1]:
        found = _find(run, words, at, last_start - run.width, tags)
        if found is None:
            return None
        starts.append(found)
        at = found + run.width
    if last_start < at or (last.checks and not _fits_at(last, words, last_start, tags)):
        return None
    starts.append(last_start)
    return starts


def _find(
    run: _Run, words: list[str], start: int, stop: int, tags: Mapping[str, frozenset[str]]
) -> int | None:
    """The leftmost position in [start, stop] where `run` fits."""
    if not run.checks:
        return start if start <= stop else None
    offset, head = run.checks[0]
    if isinstance(head, str):  # the common case, a literal word: let list.index look for it
        at = start
        while at <= stop:
            try:
                at = words.index(head, at + offset, stop + offset + 1) - offset
            except ValueError:
                return None
            if _fits_at(run, words, at, tags):
                return at
            at += 1
        return None
    heads = _words_of(head, tags)
    for at in range(start, stop + 1):
        if words[at + offset] in heads and _fits_at(run, words, at, tags):
            return at
    return None


def _fits_at(run: _Run, words: list[str], at: int, tags: Mapping[str, frozenset[str]]) -> bool:
    """Whether `run` matches the words from position `at` on (the caller keeps it inside)."""
    for offset, element in run.checks:
        word = words[at + offset]
        if word != element and (type(element) is str or not _fits(element, word, tags)):
            return False
    return True


def _fits(element: Element, word: str, tags: Mapping[str, frozenset[str]]) -> bool:
    if isinstance(element, str):
        return element == word
    kind, choices = element
    if kind == "*":
        return word in choices
    return any(word in tags.get(tag, ()) for tag in choices)  # no union built per word


def _words_of(element: tuple[str, frozenset[str]], tags: Mapping[str, frozenset[str]]
              ) -> frozenset[str]:
    """The words a (*...) or (/...) element accepts."""
    kind, choices = element
    if kind == "*":
        return choices
    if len(choices) == 1:
        [tag] = choices
        return tags.get(tag, frozenset())
    return frozenset().union(*(tags.get(tag, ()) for tag in choices))


def reassemble(pieces: Sequence[Piece], parts: Sequence[Sequence[str]]) -> list[str]:
    """Words of the answer: literal words as written, numbers replaced by that part's words."""
    words: list[str] = []
    for chunk in _chunks(tuple(pieces)):
        words += parts[chunk - 1] if isinstance(chunk, int) else chunk
    return words


@cache
def _chunks(pieces: tuple[Piece, ...]) -> tuple[int | tuple[str, ...], ...]:
    """The pieces with each stretch of literal words as one tuple: fewer steps per answer."""
    chunks: list[int | tuple[str, ...]] = []
    for piece in pieces:
        if isinstance(piece, int):
            chunks.append(piece)
        elif chunks and isinstance(chunks[-1], tuple):
            chunks[-1] += (piece,)
        else:
            chunks.append((piece,))
    return tuple(chunks)
