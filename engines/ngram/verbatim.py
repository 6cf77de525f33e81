"""Which runs of tokens the training text holds verbatim, so replies do not quote it at length.

Every window of `span` tokens of a training sentence (with <s> and </s> at its ends) is kept as
one 64-bit hash in a sorted array: a few bytes per training token, one binary search per window
of a candidate reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from engines.ngram.vocab import BOS, EOS

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: every id sequence hashes differently mod 2^64


class CopyGuard:
    def __init__(self, span: int, hashes: np.ndarray | None = None) -> None:
        self.span = span
        self.hashes = np.zeros(0, np.uint64) if hashes is None else hashes

    def add(self, sentences: Iterable[Sequence[int]]) -> None:
        fresh = [_window_hashes(s, self.span) for s in sentences]
        fresh = [h for h in fresh if len(h)]
        if fresh:
            self.hashes = np.unique(np.concatenate([self.hashes, *fresh]))

    def copies(self, sentence: Sequence[int]) -> bool:
        """True if some `span` tokens of `sentence` (ends marked) occur in the training text."""
        wanted = _window_hashes(sentence, self.span)
        if not len(wanted) or not len(self.hashes):
            return False
        at = np.minimum(np.searchsorted(self.hashes, wanted), len(self.hashes) - 1)
        return bool(np.any(self.hashes[at] == wanted))


def _window_hashes(sentence: Sequence[int], span: int) -> np.ndarray:
    ids = np.array([BOS, *sentence, EOS], np.uint64)
    if len(ids) < span:
        return np.zeros(0, np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(ids, span)
    hashes = np.zeros(len(windows), np.uint64)
    with np.errstate(over="ignore"):
        for column in range(span):
            hashes = (hashes + windows[:, column] + np.uint64(1)) * _MULTIPLIER
    return hashes
