"""Sets of n-grams as integer matrices: one n-gram per row, one word id per column.

Counting and estimation sort and merge such matrices; packing a row into one int64 (when the
ids fit) makes that a one-dimensional sort, the fast path numpy is best at.
"""

from __future__ import annotations

import numpy as np

ROW_DTYPE = np.int32


def _pack(rows: np.ndarray) -> np.ndarray | None:
    """One int64 per row, ordered like the rows lexicographically; None if it would overflow."""
    width = rows.shape[1]
    top = int(rows.max()) if rows.size else 0
    bits = max(top.bit_length(), 1)
    if bits * width > 63:
        return None
    packed = rows[:, 0].astype(np.int64)
    for column in range(1, width):
        packed = (packed << bits) | rows[:, column]
    return packed


def unique_rows(
    rows: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows in lexicographic order, and how often each occurs (or its summed
    weight)."""
    if len(rows) == 0:
        return rows.reshape(0, rows.shape[1]).astype(ROW_DTYPE), np.zeros(0, np.int64)
    packed = _pack(rows)
    if packed is None:
        first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)[1:]
    else:
        first, inverse = np.unique(packed, return_index=True, return_inverse=True)[1:]
    inverse = inverse.reshape(-1)
    if weights is None:
        totals = np.bincount(inverse, minlength=len(first))
    else:
        totals = np.bincount(inverse, weights=weights, minlength=len(first)).round()
    return rows[first].astype(ROW_DTYPE, copy=False), totals.astype(np.int64)


def merge(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Two (rows, counts) tables -> one, counts of equal rows added."""
    if len(a[0]) == 0:
        return b
    if len(b[0]) == 0:
        return a
    return unique_rows(np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]))
