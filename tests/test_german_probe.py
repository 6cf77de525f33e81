"""/probe's German gender pair ("Der Arzt sagte, dass | er | sie") on the lecture excerpt
shipped here plus a temporary folder of text files (a corpora table of the test's own, so
whether fortunes-de is installed does not matter): both continuations get a
probability above zero, equal to interpolated modified Kneser-Ney computed here from plain
counts, independently of the engine's arrays."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from engines import corpora
from engines.ngram.tokens import tokenize
from tests.ngram_helpers import started_on_corpora

TEXT = """Der Arzt sagte, dass er morgen kommt. Die Ärztin sagte, dass sie heute kommt.
Der Lehrer sagte, dass er müde ist. Sie sagte, dass es regnet.
"""
FALLBACK = (0.5, 1.0, 1.5)


def discounts(adjusted: Counter) -> tuple[float, float, float]:
    n = Counter(adjusted.values())
    if min(n[1], n[2], n[3]) == 0:
        return FALLBACK
    y = n[1] / (n[1] + 2 * n[2])
    found = tuple(j - (j + 1) * y * n[j + 1] / n[j] for j in (1, 2, 3))
    return found if all(0 <= d <= j for j, d in zip((1, 2, 3), found, strict=True)) else FALLBACK


def kneser_ney_trigram(sentences: list[list[str]]):
    """p(word | two words before) from counts, as Chen & Goodman (and KenLM's lmplz) define it."""
    padded = [["<s>", *s, "</s>"] for s in sentences]
    trigrams = Counter(tuple(s[i:i + 3]) for s in padded for i in range(len(s) - 2))
    starts = Counter(tuple(s[:2]) for s in padded)  # sentence-initial bigrams keep raw counts
    bigrams = Counter({g: 0 for g in starts} | {g[1:]: 0 for g in trigrams})
    for g in bigrams:
        bigrams[g] = starts[g] if g[0] == "<s>" else len({t for t in trigrams if t[1:] == g})
    unigrams = Counter({w: len({b for b in bigrams if b[1] == w}) for (_, w) in bigrams})
    vocab = {w for s in padded for w in s} | {"<unk>"}
    levels = [(unigrams, discounts(unigrams)), (bigrams, discounts(bigrams)),
              (trigrams, discounts(trigrams))]

    def cut(count, d):
        return 0.0 if count == 0 else d[min(count, 3) - 1]

    def p(word: str, context: tuple[str, ...]) -> float:
        counts, d = levels[len(context)]
        if not context:
            total = sum(counts.values())
            gamma = sum(cut(c, d) for c in counts.values()) / total
            return (counts[word] - cut(counts[word], d)) / total + gamma / (len(vocab) - 1)
        seen = {g: c for g, c in counts.items() if g[:-1] == context}
        lower = p(word, context[1:])
        if not seen:
            return lower
        total = sum(seen.values())
        own = seen.get((*context, word), 0)
        gamma = sum(cut(c, d) for c in seen.values()) / total
        return (own - cut(own, d)) / total + gamma * lower

    return p


@pytest.mark.usefixtures("table")  # the lecture excerpt as the only installed German corpus
async def test_the_german_gender_pair_gets_both_probabilities_from_the_counts(tmp_path):
    lang = "de"
    folder = tmp_path / "texte"
    folder.mkdir()
    (folder / "arzt.txt").write_text(TEXT, encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    engine = await started_on_corpora(data, corpus_dirs={lang: [str(folder)]})
    er, sie = await engine.probe("Der Arzt sagte, dass", ["er", "sie"], lang)
    sentences = [t for s in corpora.sentences(lang, [folder]) if (t := tokenize(s, lang))]
    p = kneser_ney_trigram(sentences)
    assert math.exp(er) == pytest.approx(p("er", (",", "dass")), rel=1e-9)
    assert math.exp(sie) == pytest.approx(p("sie", (",", "dass")), rel=1e-9)
    # ", dass" was followed by er twice, by sie and es once each: both well above nothing
    assert math.exp(er) > math.exp(sie) > 0.05
