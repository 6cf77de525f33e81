"""Raw n-gram counts of a corpus, as KenLM's lmplz collects them before smoothing.

For order N a sentence is `<s> w1 .. wn </s>`. Kept are the counts of every N-gram inside a
sentence, and for each shorter order k the counts of the sentence-initial k-grams
(`<s> w1 .. w(k-1)`, what lmplz's `<s>` padding leaves at order k). Everything else that
smoothing needs (continuation counts) follows from these, so counts are additive: learning
more text is counting it and adding, never a retrain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from engines.ngram.rows import ROW_DTYPE, merge, unique_rows
from engines.ngram.vocab import BOS, EOS

Table = tuple[np.ndarray, np.ndarray]  # (rows: (n, k) word ids, counts: (n,))
CHUNK_TOKENS = 1_000_000  # count this many tokens at a time: memory follows distinct n-grams


class NgramCounts:
    def __init__(self, order: int) -> None:
        if order < 1:
            raise ValueError("the order of an n-gram model is at least 1")
        self.order = order
        # k -> table; k == order: all N-grams, k < order: sentence-initial k-grams (k >= 2).
        self.tables: dict[int, Table] = {k: _empty(k) for k in self._kept_orders()}
        self._pending: list[Sequence[int]] = []
        self._pending_tokens = 0

    def _kept_orders(self) -> list[int]:
        return [*range(2, self.order), self.order]

    def add(self, sentences: Iterable[Sequence[int]]) -> None:
        """Queue sentences (word ids, no <s> or </s>); they are counted in chunks."""
        for sentence in sentences:
            self._pending.append(sentence)
            self._pending_tokens += len(sentence) + 2
            if self._pending_tokens >= CHUNK_TOKENS:
                self.flush()

    def flush(self) -> None:
        """Count what `add` queued and add it to the tables."""
        if not self._pending:
            return
        chunk = count_sentences(self._pending, self.order)
        self._pending, self._pending_tokens = [], 0
        for k, table in chunk.items():
            self.tables[k] = merge(self.tables[k], table)

    def table(self, k: int) -> Table:
        self.flush()
        return self.tables[k]

    @property
    def size(self) -> int:
        """Distinct n-grams held (all orders)."""
        self.flush()
        return sum(len(rows) for rows, _ in self.tables.values())


def _empty(k: int) -> Table:
    return np.zeros((0, k), ROW_DTYPE), np.zeros(0, np.int64)


def count_sentences(sentences: Sequence[Sequence[int]], order: int) -> dict[int, Table]:
    """Count one batch of sentences: {order: N-gram table, k: sentence-initial k-grams}."""
    lengths = np.fromiter((len(s) + 2 for s in sentences), np.int64, len(sentences))
    flat = np.fromiter(_padded(sentences), ROW_DTYPE, int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tables = {order: _windows(flat, lengths, order)}
    for k in range(2, order):
        long_enough = starts[lengths >= k]
        tables[k] = unique_rows(flat[long_enough[:, None] + np.arange(k)])
    return tables


def _padded(sentences: Iterable[Sequence[int]]) -> Iterable[int]:
    for sentence in sentences:
        yield BOS
        yield from sentence
        yield EOS


def _windows(flat: np.ndarray, lengths: np.ndarray, n: int) -> Table:
    """Every n-gram that lies inside one sentence of `flat`."""
    if len(flat) < n:
        return _empty(n)
    sentence_of = np.repeat(np.arange(len(lengths)), lengths)
    inside = sentence_of[: len(flat) - n + 1] == sentence_of[n - 1 :]
    windows = np.lib.stride_tricks.sliding_window_view(flat, n)[inside]
    return unique_rows(windows)
