"""Decomposition (matching a pattern against the words) and reassembly (building the answer).

A pattern is matched as the 1966 program's YMATCH did: each 0 takes as few words as it can,
the leftmost first, as long as the rest of the pattern still matches. We compute, from the
right, which (element, word) positions can still lead to a match, then walk from the left
taking the shortest choice that stays possible. That is linear in the number of words times
the length of the pattern, so a 10,000-character message cannot make a match take long.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engines.eliza.script import Element, Piece


def decompose(
    pattern: Sequence[Element], words: Sequence[str], tags: Mapping[str, frozenset[str]]
) -> list[list[str]] | None:
    """The words split into one part per pattern element, or None if the pattern fails."""
    possible = _possible(pattern, words, tags)
    if not possible[0][0]:
        return None
    parts: list[list[str]] = []
    at = 0
    for index, element in enumerate(pattern):
        if element == 0:
            after = possible[index + 1]
            size = next(n for n in range(len(words) - at + 1) if after[at + n])
        else:
            size = element if isinstance(element, int) else 1
        parts.append(list(words[at:at + size]))
        at += size
    return parts


def _possible(
    pattern: Sequence[Element], words: Sequence[str], tags: Mapping[str, frozenset[str]]
) -> list[list[bool]]:
    """possible[p][w]: pattern[p:] matches words[w:] exactly."""
    count = len(words)
    possible = [[False] * (count + 1) for _ in range(len(pattern) + 1)]
    possible[-1][count] = True
    for p in range(len(pattern) - 1, -1, -1):
        element, row, after = pattern[p], possible[p], possible[p + 1]
        if element == 0:
            reachable = False
            for w in range(count, -1, -1):  # a 0 can end at any later position
                reachable = reachable or after[w]
                row[w] = reachable
        elif isinstance(element, int):
            for w in range(count - element + 1):
                row[w] = after[w + element]
        else:
            for w in range(count):
                row[w] = after[w + 1] and _fits(element, words[w], tags)
    return possible


def _fits(element: Element, word: str, tags: Mapping[str, frozenset[str]]) -> bool:
    if isinstance(element, str):
        return element == word
    kind, choices = element
    if kind == "*":
        return word in choices
    return any(word in tags.get(tag, ()) for tag in choices)


def reassemble(pieces: Sequence[Piece], parts: Sequence[Sequence[str]]) -> list[str]:
    """Words of the answer: literal words as written, numbers replaced by that part's words."""
    words: list[str] = []
    for piece in pieces:
        if isinstance(piece, int):
            words.extend(parts[piece - 1])
        else:
            words.append(piece)
    return words


def show(pattern: Sequence[Element]) -> str:
    """A pattern as the script writes it, for /why."""
    return " ".join(_show_element(e) for e in pattern)


def _show_element(element: Element) -> str:
    if isinstance(element, tuple):
        return f"({element[0]}{' '.join(sorted(element[1]))})"
    return str(element)
