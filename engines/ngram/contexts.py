"""Keep the learned n-grams whose context the model holds.

Kneser-Ney estimation (kneser_ney.py) finds each n-gram's context, its first n-1 words, among
the next lower order: the suffixes of the order above and the sentence-initial (n-1)-grams.
Whole sentences' counts always have it; k-anonymous counts need not (people may share "code is
late" but not what came before it in any one sentence), and neither may counts pruned for a
bound. As KenLM requires of a pruned model, every prefix of a held n-gram is held: a learned
n-gram without its context is left out (until its context is learned too). The corpus tables
have all their contexts, so only the learned rows are checked, against the corpus's lower
order computed once.
"""

from __future__ import annotations

import numpy as np

from engines.ngram.counts import Table
from engines.ngram.rows import ROW_DTYPE


def _keys(rows: np.ndarray) -> np.ndarray:
    """Each row as one opaque key (equal rows, equal keys), for sorting and searching."""
    rows = np.ascontiguousarray(rows, dtype=ROW_DTYPE)
    width = max(rows.shape[1], 1) * rows.dtype.itemsize
    return rows.view(np.dtype((np.void, width))).reshape(-1)


def _held(sorted_keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    if not len(sorted_keys) or not len(wanted):
        return np.zeros(len(wanted), bool)
    at = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
    return sorted_keys[at] == wanted


def _keep(table: Table, mask: np.ndarray) -> Table:
    return table[0][mask], table[1][mask]


class ContextCheck:
    """The corpus's lower orders as sorted keys (they never change), and the check."""

    def __init__(self, corpus: dict[int, Table], order: int) -> None:
        self.order = order
        self.corpus = corpus
        self._lower: np.ndarray | None = None  # keys of the corpus's order N-1

    def lower(self) -> np.ndarray:
        if self._lower is None:
            n = self.order
            suffixes = self.corpus[n][0][:, 1:]
            self._lower = np.unique(_keys(np.concatenate([suffixes, self.corpus[n - 1][0]])))
        return self._lower

    def keep(self, learned: dict[int, Table]) -> dict[int, Table]:
        """`learned` without the rows whose context the merged model would not hold."""
        n, out = self.order, dict(learned)
        if n < 3:
            return out  # an order-2 context is a word: every word is held
        for k in range(3, n):  # sentence starts: their own starts come first
            prefixes = np.unique(np.concatenate([_keys(self.corpus[k - 1][0]),
                                                 _keys(out[k - 1][0])]))
            out[k] = _keep(out[k], _held(prefixes, _keys(out[k][0][:, :-1])))
        while len(out[n][0]):
            mine = np.unique(np.concatenate([_keys(out[n][0][:, 1:]), _keys(out[n - 1][0])]))
            prefixes = _keys(out[n][0][:, :-1])
            held = _held(self.lower(), prefixes) | _held(mine, prefixes)
            if held.all():
                break
            out[n] = _keep(out[n], held)
        return out
