"""A message -> ELIZA's words: upper case, with "," and "." as words of their own.

The 1966 program read the IBM 7090's BCD characters only. We keep letters and digits of any
alphabet (a German script needs Ä, Ö, Ü), apostrophes and hyphens inside words, and treat every
other symbol (quotes, brackets, emoji) as a space. "?" and "!" end a sentence as "." does.
"""

from __future__ import annotations

import re

# Words, and the punctuation that ELIZA treats as a word.
_TOKEN = re.compile(r"[\w'-]+|[,.?!]")
# Apostrophes to one, and "?" and "!" to "." before the split: one pass over the text.
_NORMAL = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "?": ".", "!": "."})


def tokenize(text: str) -> list[str]:
    """'Well, my boyfriend made me come here!' -> WELL , MY BOYFRIEND MADE ME COME HERE ."""
    return _TOKEN.findall(text.translate(_NORMAL).upper())
