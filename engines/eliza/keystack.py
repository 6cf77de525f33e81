"""The scan of a message: which clause ELIZA answers, its substituted words, its keystack.

Words are read left to right. A delimiter ("," "." and words like BUT) before any keyword
drops the text read so far; after a keyword it drops the rest. Each word the script knows is
replaced by its substitute once (so I -> YOU and YOU -> I swap instead of cancelling). A
keyword ranked above every keyword seen goes on top of the keystack, any other goes to the
bottom: of keywords with the same rank, the earliest is tried first.
"""

from __future__ import annotations

from collections.abc import Sequence

from engines.eliza.script import Script


def scan(tokens: Sequence[str], script: Script) -> tuple[list[str], list[str]]:
    """(the words of the chosen clause after substitution, the keystack, top first)."""
    words: list[str] = []
    keystack: list[str] = []
    top_rank = 0
    for token in tokens:
        if token in script.delimiters:
            if keystack:
                break
            words = []
            continue
        entry = script.entries.get(token)
        if entry is not None:
            if entry.is_keyword and entry.rank > top_rank:
                keystack.insert(0, token)
                top_rank = entry.rank
            elif entry.is_keyword:
                keystack.append(token)
            token = entry.substitute or token
        words.append(token)
    return words, keystack
