"""The scan of a message: which clause ELIZA answers, its substituted words, its keystack.

Words are read left to right. A delimiter ("," "." and words like BUT) before any keyword
drops the text read so far; after a keyword it drops the rest. Each word the script knows is
replaced by its substitute once (so I -> YOU and YOU -> I swap instead of cancelling). A
keyword ranked above every keyword seen goes on top of the keystack, any other goes to the
bottom: of keywords with the same rank, the earliest is tried first.
"""

from __future__ import annotations

from collections.abc import Sequence

from engines.eliza.script import DELIMITER, Script


def scan(tokens: Sequence[str], script: Script) -> tuple[list[str], list[str]]:
    """(the words of the chosen clause after substitution, the keystack, top first)."""
    marks = script.marks
    # Only keywords and delimiters steer the scan: find them first, then walk those alone.
    marked = [i for i, token in enumerate(tokens) if token in marks]
    start, stop = 0, len(tokens)
    keystack: list[str] = []
    top_rank = 0
    for i in marked:
        token = tokens[i]
        rank = marks[token]
        if rank == DELIMITER:
            if keystack:
                stop = i
                break
            start = i + 1
        elif rank > top_rank:
            keystack.insert(0, token)
            top_rank = rank
        else:
            keystack.append(token)
    substitutes = script.substitutes
    return [substitutes.get(token, token) for token in tokens[start:stop]], keystack
