"""The words of a message that a reply should be about: words that are no stop words."""

from __future__ import annotations

import functools
from collections.abc import Callable
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
    """The distinct content words among `tokens`, in order of appearance (abbreviations and
    ordinals, "z." "3.", are no content words)."""
    stop = stopwords(lang)
    return list(dict.fromkeys(t for t in tokens
                              if is_word(t) and t not in stop and not t.endswith(".")))


def nouns_first(words: list[str], spelling: Callable[[str], str]) -> list[str]:
    """German: the nouns among `words` (capitalised mid-sentence, as `spelling` knows), when
    there are any: a message is about "Wetter", not about "denkst"."""
    nouns = [w for w in words if spelling(w)[:1].isupper()]
    return nouns or words
