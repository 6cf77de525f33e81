"""A smoothed n-gram model held as sorted arrays, and how to score and sample with it.

Order k is stored as sorted int64 keys `context_index * V + word`, where context_index is the
row of the context (the first k-1 words) in order k-1, like the levels of a trie: looking an
n-gram up is one binary search per word, and the continuations of a context are one slice.
Each n-gram has its interpolated probability, the undiscounted-by-lower-orders part of it
(`uninterp`, for exact sampling), and a backoff weight (1 where it is no context). Scoring
follows KenLM: back off from the longest matching n-gram, multiplying in the backoffs of the
longer contexts that did not match.

The bot asks one token at a time (the reply search samples and scores word by word), and a
numpy call costs about a microsecond whatever its size, so the scalar paths keep what they
looked up: the rows of each context seen (a reply search revisits the same few contexts
thousands of times), each context's continuations as plain lists for sampling, memoryviews
of the arrays, whose items are Python numbers without numpy's scalar overhead, and where each
context's continuations start, so a lookup is a `bisect` over those few keys alone. A model is never
changed once estimated (learning estimates a new one), so nothing cached goes stale.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engines.ngram.vocab import BOS, EOS, UNK

CACHE_ENTRIES = 50_000  # per cache and model; a full cache is emptied and filled anew


def _view(array: np.ndarray) -> memoryview:
    """The array's items as Python numbers, read without numpy's per-call overhead."""
    return memoryview(np.ascontiguousarray(array))  # type: ignore[arg-type]


@dataclass
class _Views:
    """The arrays as memoryviews (items read as Python numbers), per order, and where each
    context's continuations begin in the next order (`starts[k][row]`, one past the last row
    at the end): a lookup searches only its context's few continuations."""

    keys: list[memoryview]
    prob: list[memoryview]
    backoff: list[memoryview]
    starts: list[memoryview]


class LanguageModel:
    def __init__(self, order: int, vocab_size: int) -> None:
        self.order = order
        self.vocab_size = vocab_size
        self.keys: list[np.ndarray] = []
        self.uninterp: list[np.ndarray] = []
        self.prob: list[np.ndarray] = []
        self.backoff: list[np.ndarray] = []
        self.discounts: list[tuple[float, float, float]] = []
        self.fallback: list[bool] = []
        self._unigram_cdf: list[float] | None = None
        self._rows_of: dict[tuple[int, ...], list[int]] = {}  # context tail -> its rows
        self._followers: dict[tuple[int, int], tuple[list[int], list[float]]] = {}
        self._views: _Views | None = None

    def add_order(self, keys: np.ndarray, uninterp: np.ndarray, prob: np.ndarray) -> None:
        self.keys.append(keys)
        self.uninterp.append(uninterp)
        self.prob.append(prob)

    @property
    def sizes(self) -> list[int]:
        return [len(keys) for keys in self.keys]

    # -- looking n-grams up -----------------------------------------------------------------

    def step(self, k: int, context: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Rows in order k+1 of (context row in order k, word); -1 where there is none."""
        keys = self.keys[k]
        valid = (context >= 0) & (words < self.vocab_size)
        wanted = np.where(valid, context, 0) * self.vocab_size + np.where(valid, words, 0)
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = valid & (keys[at] == wanted) if len(keys) else np.zeros_like(valid)
        return np.where(found, at, -1)

    def index(self, rows: np.ndarray) -> np.ndarray:
        """Row in order k of each n-gram in `rows` (shape (n, k)); -1 where it is not held."""
        rows = np.asarray(rows, np.int64)
        found = np.where(rows[:, 0] < self.vocab_size, rows[:, 0], -1)
        for k in range(1, rows.shape[1]):
            found = self.step(k, found, rows[:, k])
        return found

    def _row(self, k: int, context_row: int, word: int) -> int:
        """Scalar `step`: the row in order k+1 of (context row in order k, word), or -1."""
        views = self._memoryviews()
        keys, starts = views.keys[k], views.starts[k]
        lo, hi = starts[context_row], starts[context_row + 1]  # the context's continuations
        wanted = context_row * self.vocab_size + word
        at = bisect.bisect_left(keys, wanted, lo, hi)
        return at if at < hi and keys[at] == wanted else -1

    def prepare(self) -> None:
        """Build what the scalar lookups use (estimation calls it once the model is done)."""
        self._memoryviews()

    def _memoryviews(self) -> _Views:
        if self._views is None:
            starts = [_view(np.zeros(1, np.int64))]  # order 1 has no context
            for k in range(1, self.order):
                contexts = np.arange(len(self.keys[k - 1]) + 1, dtype=np.int64)
                starts.append(_view(np.searchsorted(self.keys[k], contexts * self.vocab_size)))
            self._views = _Views([_view(a) for a in self.keys], [_view(a) for a in self.prob],
                                 [_view(a) for a in self.backoff], starts)
        return self._views

    def _context_rows(self, context: Sequence[int]) -> list[int]:
        """Rows of the context's suffixes, shortest first, up to the first that is not held."""
        if self.order == 1:
            return []
        tail = tuple(context[1 - self.order:])  # a shorter context: all of it
        found = self._rows_of.get(tail)
        if found is None:
            found = self._look_up_context(tail)
            _remember(self._rows_of, tail, found)
        return found

    def _look_up_context(self, tail: tuple[int, ...]) -> list[int]:
        if tail and max(tail) >= self.vocab_size:
            tail = tuple(w if w < self.vocab_size else UNK for w in tail)
        found: list[int] = []
        for length in range(1, len(tail) + 1):
            row = tail[-length]  # a unigram's row is its id; longer ones extend their prefix
            for k in range(1, length):
                row = self._row(k, row, tail[k - length])
                if row < 0:
                    return found
            found.append(row)
        return found

    def _continuations(self, k: int, row: int) -> slice:
        """The slice of order k+1 whose n-grams extend row `row` of order k."""
        starts = self._memoryviews().starts[k]
        return slice(starts[row], starts[row + 1])

    # -- probabilities ----------------------------------------------------------------------

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """p(w | context) for every word id w (0 for <s>); sums to 1."""
        p = self.prob[0].copy()
        for k, row in enumerate(self._context_rows(context), start=1):
            if k >= self.order:
                break
            p *= self.backoff[k - 1][row]
            seen = self._continuations(k, row)
            p[self.keys[k][seen] % self.vocab_size] = self.prob[k][seen]
        p[BOS] = 0.0
        return p

    def knows(self, word: int) -> bool:
        """Whether the model holds `word` (counted, not merely in the vocabulary)."""
        return word < self.vocab_size and self.uninterp[0][word] > 0

    def prob_of(self, context: Sequence[int], word: int) -> float:
        """p(word | context): the longest n-gram the model holds, times the backoff weights of
        the longer contexts that did not continue with `word`."""
        size = self.vocab_size
        word = word if word < size else UNK
        views = self._views or self._memoryviews()
        rows = self._context_rows(context)
        weight = 1.0
        for k in range(len(rows), 0, -1):  # `_row` inlined: this is the bot's hottest loop
            row, keys, starts = rows[k - 1], views.keys[k], views.starts[k]
            hi, wanted = starts[row + 1], row * size + word
            at = bisect.bisect_left(keys, wanted, starts[row], hi)
            if at < hi and keys[at] == wanted:
                return weight * views.prob[k][at]
            weight *= views.backoff[k - 1][row]
        return weight * views.prob[0][word]

    def unseen(self, tokens: Sequence[int]) -> int:
        """How many n-grams of `<s> tokens </s>` (each word and </s> with as much context as
        the order and the sentence allow) the model does not hold: where it backed off."""
        history, missing = [BOS], 0
        for word in [*tokens, EOS]:
            rows = self._context_rows(history)
            wanted = min(len(history), self.order - 1)
            if len(rows) < wanted or (wanted and self._row(wanted, rows[-1], word) < 0):
                missing += 1
            history.append(word)
        return missing

    def score(self, sentences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """log10 p of every predicted token (each word and </s>; <s> is the first context), and
        which of them are out of the vocabulary. Vectorised over the whole corpus."""
        lengths = np.fromiter((len(s) + 2 for s in sentences), np.int64, len(sentences))
        flat = np.fromiter(_padded(sentences), np.int64, int(lengths.sum()))
        flat[flat >= self.vocab_size] = UNK
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        position = np.arange(len(flat)) - starts
        ending = [np.full(len(flat), -1), flat]  # ending[j][i]: row of the j-gram ending at i
        for j in range(2, self.order + 1):
            before = _shifted(ending[j - 1])
            ending.append(np.where(position >= j - 1, self.step(j - 1, before, flat), -1))
        logp = np.zeros(len(flat))
        matched = position == 0  # <s> is context, never predicted
        for j in range(self.order, 0, -1):
            hit = (ending[j] >= 0) & ~matched
            logp[hit] += np.log10(self.prob[j - 1][ending[j][hit]])
            matched |= hit
            if j >= 2:
                context = _shifted(ending[j - 1])
                back = ~matched & (context >= 0) & (position >= j - 1)
                logp[back] += np.log10(self.backoff[j - 2][context[back]])
        predicted = position > 0
        return logp[predicted], flat[predicted] == UNK

    # -- sampling ---------------------------------------------------------------------------

    def sample(self, context: Sequence[int], rng: random.Random, seen: bool = False) -> int:
        """One word drawn from p(. | context), never <s> or <unk>. Exact: with the mass of the
        seen continuations pick one of them, else back off to the shorter context. `seen`: only
        back off where the longest context has no continuation (what the corpus says next)."""
        rows = self._context_rows(context)[: self.order - 1]
        for k in range(len(rows), 0, -1):
            words, mass = self._followers_of(k, rows[k - 1])
            if mass and (seen or rng.random() < mass[-1]):
                pick = bisect.bisect_right(mass, rng.random() * mass[-1])
                word = words[min(pick, len(mass) - 1)]
                if word != UNK:
                    return word
        return self._sample_unigram(rng)

    def followers(self, word: int) -> list[int]:
        """The words seen right after `word` (bigrams held)."""
        return self._followers_of(1, word)[0] if self.order > 1 else []

    def _followers_of(self, k: int, row: int) -> tuple[list[int], list[float]]:
        """The words seen after row `row` of order k, and the running sum of their
        undiscounted-by-lower-orders probabilities."""
        found = self._followers.get((k, row))
        if found is None:
            seen = self._continuations(k, row)
            found = ((self.keys[k][seen] % self.vocab_size).tolist(),
                     np.cumsum(self.uninterp[k][seen]).tolist())
            _remember(self._followers, (k, row), found)
        return found

    def _sample_unigram(self, rng: random.Random) -> int:
        if self._unigram_cdf is None:
            p = self.prob[0].copy()
            p[[UNK, BOS]] = 0.0
            self._unigram_cdf = np.cumsum(p).tolist()
        cdf = self._unigram_cdf
        if cdf[-1] <= 0:
            return EOS
        return bisect.bisect_right(cdf, rng.random() * cdf[-1])


def _remember(cache: dict, key, value) -> None:
    if len(cache) >= CACHE_ENTRIES:
        cache.clear()
    cache[key] = value


def _padded(sentences: Sequence[Sequence[int]]):
    for sentence in sentences:
        yield BOS
        yield from sentence
        yield EOS


def _shifted(values: np.ndarray) -> np.ndarray:
    """values[i - 1] at i (-1 at 0)."""
    out = np.empty_like(values)
    out[0] = -1
    out[1:] = values[:-1]
    return out
