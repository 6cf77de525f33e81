"""Interpolated modified Kneser-Ney estimation, as KenLM's lmplz does it (Chen & Goodman 1998).

1. Adjusted counts: the highest order and n-grams that start with <s> keep their raw counts;
   every other n-gram counts the distinct words seen to its left (its continuation count).
2. Three discounts per order from the counts-of-counts n1..n4 of the adjusted counts:
   Y = n1 / (n1 + 2 n2),  D_j = j - (j + 1) Y n_(j+1) / n_j  for j = 1, 2, 3+.
   Where a small corpus leaves them undefined (some n_j = 0) or out of range, lmplz stops and
   asks for --discount_fallback; we take its fallback (0.5, 1, 1.5) for that order instead.
3. p(w | c) = (a(c w) - D(a(c w))) / sum_x a(c x)  +  gamma(c) p(w | c without its first word),
   gamma(c) = sum_x D(a(c x)) / sum_x a(c x); unigrams interpolate with the uniform
   distribution over the vocabulary without <s>. gamma(c) is c's backoff weight.
"""

from __future__ import annotations

import numpy as np

from engines.ngram.counts import NgramCounts
from engines.ngram.model import LanguageModel
from engines.ngram.rows import ROW_DTYPE, unique_rows
from engines.ngram.vocab import BOS

Discount = tuple[float, float, float]  # for adjusted counts 1, 2 and 3+
FALLBACK: Discount = (0.5, 1.0, 1.5)  # lmplz --discount_fallback's default


def discounts(adjusted: np.ndarray, fallback: Discount = FALLBACK) -> tuple[Discount, bool]:
    """The discounts for one order from its adjusted counts; (discounts, used_fallback)."""
    n = [int(np.count_nonzero(adjusted == j)) for j in range(5)]
    if min(n[1:4]) == 0:
        return fallback, True
    y = n[1] / (n[1] + 2 * n[2])
    d1, d2, d3 = (j - (j + 1) * y * n[j + 1] / n[j] for j in (1, 2, 3))
    amounts = (d1, d2, d3)
    if any(not 0.0 <= d <= j for j, d in zip((1, 2, 3), amounts, strict=True)):
        return fallback, True
    return amounts, False


def adjusted_counts(
    counts: NgramCounts, vocab_size: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{k: (rows in lexicographic order, adjusted counts)}; order 1 rows are all word ids."""
    order = counts.order
    grams = {order: counts.table(order)}
    for k in range(order - 1, 0, -1):
        suffixes, continuation = unique_rows(grams[k + 1][0][:, 1:])
        if k >= 2:
            starts, raw = counts.table(k)
            grams[k] = unique_rows(
                np.concatenate([suffixes, starts]), np.concatenate([continuation, raw])
            )
        else:
            grams[1] = suffixes, continuation
    rows, values = grams[1]
    unigram = np.zeros(vocab_size, np.int64)
    unigram[rows[:, 0]] = values
    unigram[BOS] = 0  # <s> is never predicted: lmplz gives it no count
    grams[1] = np.arange(vocab_size, dtype=ROW_DTYPE)[:, None], unigram
    return grams


def estimate(counts: NgramCounts, vocab_size: int, fallback: Discount = FALLBACK) -> LanguageModel:
    """Counts -> a smoothed model over a vocabulary of `vocab_size` ids (specials included)."""
    grams = adjusted_counts(counts, vocab_size)
    model = LanguageModel(counts.order, vocab_size)
    for k in range(1, counts.order + 1):
        rows, adjusted = grams[k]
        found, used_fallback = discounts(adjusted, fallback)
        model.discounts.append(found)
        model.fallback.append(used_fallback)
        if k == 1:
            _unigrams(model, adjusted, found)
        else:
            _higher_order(model, rows, adjusted, found)
    model.backoff.append(np.ones(len(model.prob[-1])))  # the highest order is no context
    model.prepare()
    return model


def _discount_of(adjusted: np.ndarray, found: Discount) -> np.ndarray:
    table = np.array([0.0, *found])
    return table[np.minimum(adjusted, 3)]


def _unigrams(model: LanguageModel, adjusted: np.ndarray, found: Discount) -> None:
    size = len(adjusted)
    total = adjusted.sum()
    uniform = 1.0 / (size - 1)  # the vocabulary without <s>
    if total == 0:
        uninterp = np.zeros(size)
        gamma = 1.0
    else:
        cut = _discount_of(adjusted, found)
        uninterp = (adjusted - cut) / total
        gamma = cut.sum() / total
    model.add_order(np.arange(size, dtype=np.int64), uninterp, uninterp + gamma * uniform)
    model.prob[0][BOS] = 0.0
    model.uninterp[0][BOS] = 0.0


def _higher_order(model: LanguageModel, rows: np.ndarray, adjusted: np.ndarray, found: Discount):
    context = model.index(rows[:, :-1])
    suffix = model.index(rows[:, 1:])
    contexts = len(model.prob[-1])
    cut = _discount_of(adjusted, found)
    total = np.bincount(context, weights=adjusted, minlength=contexts)
    is_context = total > 0
    gamma = np.divide(np.bincount(context, weights=cut, minlength=contexts), total,
                      out=np.zeros(contexts), where=is_context)
    model.backoff.append(np.where(is_context, gamma, 1.0))
    uninterp = (adjusted - cut) / total[context]
    prob = uninterp + gamma[context] * model.prob[-1][suffix]
    model.add_order(context.astype(np.int64) * model.vocab_size + rows[:, -1], uninterp, prob)
