"""Whose words a text holds: the words and word sequences that people's privacy rules look for
(issue 25). /forget blanks a stored reply that quotes the person (bot/store/privacy.py); the
fine-tuning export keeps what fewer than k people wrote out of training (finetune/common.py).

A word or a run of SEQUENCE_WORDS words is the unit: ELIZA reflects words with the pronouns
turned and the transformer quotes its prompt's history in its own frame, so a rare word is
found alone; a secret of common words ("the door code is four four nine") as a run. What the
packaged corpora hold (every engine learns them in full) is no one's: ordinary words and
phrases are never taken for a quote.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

SEQUENCE_WORDS = 3  # the n-gram engine's default order: the span its shared model learns
LANGS = ("en", "de")  # the corpora whose words and sequences are public
WORD = re.compile(r"\w+(?:['’]\w+)*")

Gram = tuple[str, ...]


def words(text: str) -> list[str]:
    return [m[0].lower() for m in WORD.finditer(text)]


def grams(tokens: list[str], n: int = SEQUENCE_WORDS) -> Iterator[Gram]:
    """Every single word and every run of n words."""
    yield from ((t,) for t in tokens)
    yield from (tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


@functools.lru_cache(maxsize=1)
def public_grams() -> frozenset[Gram]:
    """The words and runs of the packaged corpora (read once per process, about a second)."""
    from engines import corpora

    found: set[Gram] = set()
    for lang in LANGS:
        for sentence in corpora.sentences(lang):
            found.update(grams(words(sentence)))
    return frozenset(found)


def own_grams(texts: Iterable[str], public: frozenset[Gram]) -> set[Gram]:
    """The words and runs of `texts` that are not public: the ones a quote would show."""
    return {g for text in texts for g in grams(words(text)) if g not in public}


def quotes(text: str, theirs: set[Gram]) -> bool:
    """Does `text` hold a word or run of `theirs`?"""
    return any(g in theirs for g in grams(words(text)))
