"""One language's model: its counts, the models estimated from them, and its copy guard.

Counts only grow (packaged corpora, then the chat); the models are re-estimated from them
after learning, off the event loop, and swapped in whole, so a reply running in another thread
always sees one consistent model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from engines.corpora import Found, split_sentences
from engines.ngram.counts import NgramCounts
from engines.ngram.model import LanguageModel
from engines.ngram.tokens import tokenize_cased
from engines.ngram.training import Corpus
from engines.ngram.verbatim import CopyGuard
from engines.ngram.vocab import Vocab


@dataclass
class Models:
    forward: LanguageModel
    backward: LanguageModel
    guard: CopyGuard
    tokens: int  # training tokens behind them


class Language:
    def __init__(self, lang: str, order: int, copy_span: int) -> None:
        self.lang = lang
        self.corpus = Corpus(order)
        self.guard = CopyGuard(copy_span)
        self.tokens = 0
        self.models: Models | None = None
        self.estimations = 0  # how often models were estimated from the counts
        # Which corpora its base counts came from, and which would add to them (for /engines).
        self.found = Found([], [])
        # How often each spelling was seen inside a sentence: replies write "Filme", "KI".
        self.spellings: Counter[str] = Counter()

    def learn(self, texts: Iterable[str]) -> int:
        """Count the sentences of `texts`; returns how many tokens that added."""
        cased = [tokenize_cased(s, self.lang)
                 for text in texts for s in split_sentences(text, self.lang)]
        for sentence in cased:
            self.spellings.update(sentence[1:])  # the first word is capitalised anyway
        sentences = [[token.lower() for token in s] for s in cased if s]
        added = self.corpus.add(sentences)
        self.guard.add(self.corpus.vocab.encode(s) for s in sentences)
        self.tokens += added
        return added

    def spelling(self, word: str) -> str:
        """The commonest of `word`, `Word` and `WORD` mid-sentence (lower-case on a tie)."""
        forms = (word, word.capitalize(), word.upper())
        return max(forms, key=lambda form: self.spellings.get(form, 0))

    @property
    def estimated(self) -> Models:
        """The models as last estimated (the engine estimates each language as it starts)."""
        if self.models is None:
            raise RuntimeError(f"the {self.lang} n-gram models are not estimated yet")
        return self.models

    def estimate(self) -> Models:
        forward, backward = self.corpus.models()
        self.estimations += 1
        self.models = Models(forward, backward, CopyGuard(self.guard.span, self.guard.hashes),
                             self.tokens)
        return self.models

    # -- snapshot contents ------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"guard": self.guard.hashes}
        for direction, counts in (("fw", self.corpus.forward), ("bw", self.corpus.backward)):
            for k in counts.tables:
                rows, values = counts.table(k)
                out[f"{direction}{k}_rows"], out[f"{direction}{k}_counts"] = rows, values
        return out

    def header(self) -> dict:
        return {"words": self.corpus.vocab.words, "tokens": self.tokens,
                "spellings": dict(self.spellings)}

    @classmethod
    def restore(cls, lang: str, order: int, copy_span: int, header: dict,
                arrays: dict[str, np.ndarray]) -> Language:
        """Rebuild from a snapshot's parts (KeyError or ValueError if they do not fit)."""
        language = cls(lang, order, copy_span)
        language.corpus.vocab = Vocab(header["words"])
        language.tokens = int(header["tokens"])
        language.spellings = Counter(header["spellings"])
        language.guard = CopyGuard(copy_span, arrays["guard"])
        for direction, counts in (("fw", language.corpus.forward),
                                  ("bw", language.corpus.backward)):
            _restore_counts(counts, arrays, direction)
        return language


def _restore_counts(counts: NgramCounts, arrays: dict[str, np.ndarray], direction: str) -> None:
    for k in counts.tables:
        rows, values = arrays[f"{direction}{k}_rows"], arrays[f"{direction}{k}_counts"]
        if rows.ndim != 2 or rows.shape[1] != k or len(rows) != len(values):
            raise ValueError(f"snapshot table {direction}{k} has the wrong shape")
        counts.tables[k] = rows, values
