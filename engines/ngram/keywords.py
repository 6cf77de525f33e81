"""The words of a message that a reply should be about: words that are no stop words."""

from __future__ import annotations

import functools
from pathlib import Path

from engines.ngram.tokens import is_word

STOPWORDS_DIR = Path(__file__).with_name("stopwords")


@functools.cache
def stopwords(lang: str) -> frozenset[str]:
    """The stop words of `lang` from stopwords/LANG.txt (none for a language without a file)."""
    path = STOPWORDS_DIR / f"{lang}.txt"
    if not path.is_file():
        return frozenset()
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


def keywords(tokens: list[str], lang: str) -> list[str]:
    """The distinct content words among `tokens`, in order of appearance."""
    stop = stopwords(lang)
    return list(dict.fromkeys(t for t in tokens if is_word(t) and t not in stop))
