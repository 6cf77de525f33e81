"""Text <-> words: lower-cased words and punctuation marks, and back to readable text."""

from __future__ import annotations

import re

# A word (with inner apostrophes or hyphens: "don't", "e-mail") or one punctuation mark.
_TOKEN = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:)]}%…'’")
_NO_SPACE_AFTER = set("([{¿¡")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def tokenize_cased(text: str) -> list[str]:
    """The same tokens as `tokenize`, as written (for learning how a word is spelled)."""
    return _TOKEN.findall(text)


def is_word(token: str) -> bool:
    return token[:1].isalnum()


def detokenize(tokens: list[str]) -> str:
    """Join tokens into a sentence: no space before closing punctuation, first letter upper."""
    out = ""
    for token in tokens:
        glue = not out or token in _NO_SPACE_BEFORE or out[-1] in _NO_SPACE_AFTER
        out += token if glue else " " + token
    return out[:1].upper() + out[1:]
