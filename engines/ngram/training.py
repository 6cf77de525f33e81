"""Turn text into counts and counts into models: the one place that glues vocab, counts and
estimation together, for the engine and for `python -m engines.ngram eval` alike."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engines.ngram.counts import NgramCounts
from engines.ngram.kneser_ney import estimate
from engines.ngram.model import LanguageModel
from engines.ngram.vocab import Vocab


@dataclass
class Corpus:
    """Counts of one language in both directions (the backward model grows replies leftwards)."""

    order: int
    vocab: Vocab = field(default_factory=Vocab)
    forward: NgramCounts = field(init=False)
    backward: NgramCounts = field(init=False)

    def __post_init__(self) -> None:
        self.forward = NgramCounts(self.order)
        self.backward = NgramCounts(self.order)

    def add(self, sentences: Iterable[list[str]]) -> int:
        """Count tokenised sentences (new words join the vocabulary); returns tokens added."""
        encoded = [self.vocab.encode(s, grow=True) for s in sentences if s]
        self.forward.add(encoded)
        self.backward.add([ids[::-1] for ids in encoded])
        return sum(map(len, encoded))

    def models(self) -> tuple[LanguageModel, LanguageModel]:
        size = len(self.vocab)
        return estimate(self.forward, size), estimate(self.backward, size)


def train(sentences: Iterable[list[str]], order: int) -> tuple[Vocab, LanguageModel]:
    """A forward model of tokenised sentences (for evaluation: no backward model)."""
    vocab = Vocab()
    counts = NgramCounts(order)
    counts.add(vocab.encode(s, grow=True) for s in sentences)
    return vocab, estimate(counts, len(vocab))
