"""A message -> ELIZA's words: upper case, with "," and "." as words of their own.

The 1966 program read the IBM 7090's BCD characters only. We keep letters and digits of any
alphabet (a German script needs Ä, Ö, Ü), apostrophes and hyphens inside words, and treat every
other symbol (quotes, brackets, emoji) as a space. "?" and "!" end a sentence as "." does.
"""

from __future__ import annotations

import re
import string

# Words, and the punctuation that ELIZA treats as a word.
_TOKEN = re.compile(r"[\w'-]+|[,.?!]")
# Apostrophes to one, and "?" and "!" to "." before the split: one pass over the text.
_NORMAL = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "?": ".", "!": "."})


def _ascii_table() -> dict[int, str]:
    """For ASCII text, the same split by str.split: what _TOKEN keeps in words stays, the
    punctuation it keeps gets spaces around it, every other character becomes a space."""
    table = {chr(code): " " for code in range(128)}
    table |= {char: char for char in string.ascii_letters + string.digits + "_'-"}
    table |= {"`": "'", ",": " , ", ".": " . ", "?": " . ", "!": " . "}
    return str.maketrans(table)


_ASCII = _ascii_table()


def tokenize(text: str) -> list[str]:
    """'Well, my boyfriend made me come here!' -> WELL , MY BOYFRIEND MADE ME COME HERE ."""
    if text.isascii():  # most messages: the same split, by one table and str.split
        return text.translate(_ASCII).upper().split()
    return _TOKEN.findall(text.translate(_NORMAL).upper())
