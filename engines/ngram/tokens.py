"""Text <-> words: lower-cased words and punctuation marks, and back to readable text.

English keeps the plain rule (words with inner apostrophes or hyphens, one mark at a time);
German has its own (engines/german.py: abbreviations, ordinals, quotes, compounds).
"""

from __future__ import annotations

import re

from engines import german

# Raised whenever a change here gives other tokens: a snapshot counted with others is rebuilt.
VERSION = 2
# A word (with inner apostrophes or hyphens: "don't", "e-mail") or one punctuation mark.
_TOKEN = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:)]}%…'’")
_NO_SPACE_AFTER = set("([{¿¡")
# How a paired '"' is written when a reply is put together: (opening, closing).
_QUOTE_MARKS = {"de": ("„", "“")}


def tokenize(text: str, lang: str = "en") -> list[str]:
    return [token.lower() for token in tokenize_cased(text, lang)]


def tokenize_cased(text: str, lang: str = "en") -> list[str]:
    """The same tokens as `tokenize`, as written (for learning how a word is spelled)."""
    return german.tokens(text) if lang == "de" else _TOKEN.findall(text)


def is_word(token: str) -> bool:
    return token[:1].isalnum()


def detokenize(tokens: list[str], lang: str = "en") -> str:
    """Join tokens into a sentence: no space before closing punctuation, none inside a pair of
    quotes, first letter upper (after an opening quote, too)."""
    opening, closing = _QUOTE_MARKS.get(lang, ('"', '"'))
    out, open_quote = "", False
    for token in tokens:
        if token == '"':
            open_quote = not open_quote
            glue = not out or not open_quote or out[-1] in _NO_SPACE_AFTER
            out += ("" if glue else " ") + (opening if open_quote else closing)
            continue
        glue = (not out or token in _NO_SPACE_BEFORE or out[-1] in _NO_SPACE_AFTER
                or (open_quote and out[-1] == opening))
        out += token if glue else " " + token
    first = next((i for i, char in enumerate(out) if char.isalnum()), 0)
    return out[:first] + out[first:first + 1].upper() + out[first + 1:]
