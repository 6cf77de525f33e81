"""MEMORY: which form of a MY-sentence is kept, and the hash that chooses it.

The paper says a form is chosen "at random". The program (MAD-SLIP, found in Weizenbaum's
MIT archive) chose it with SLIP's HASH of the last word of the sentence: the word as the IBM
7090 stored it (6-bit BCD, six characters to a machine word, the last word-sized chunk,
space padded), squared, and the middle bits taken. That is why "WELL, MY BOYFRIEND MADE ME
COME HERE" is remembered as "DOES THAT HAVE ANYTHING TO DO WITH THE FACT THAT YOUR BOYFRIEND
MADE YOU COME HERE": HASH("HERE", 2) is 3, the fourth form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from engines.eliza.pattern import decompose, reassemble
from engines.eliza.script import MemoryRule

# The 7090's BCD character set: the character at index i has code i; "_" marks unused codes.
_BCD = "0123456789_='___+ABCDEFGHI_.)___-JKLMNOPQR_$*___ /STUVWXYZ_,(___"
_CODES = {char: code for code, char in enumerate(_BCD) if char != "_"}
_OTHER = _CODES["-"]  # a character the 7090 did not have counts as "-"
_CHARS_PER_WORD = 6


@lru_cache(maxsize=4096)  # a chat's sentences end in the same words again and again
def bcd_word(word: str) -> int:
    """The last machine word of `word`: its last chunk of up to 6 characters, space padded."""
    start = max(len(word) - 1, 0) // _CHARS_PER_WORD * _CHARS_PER_WORD
    chunk = word[start:].ljust(_CHARS_PER_WORD)
    datum = 0
    for char in chunk:
        datum = datum << 6 | _CODES.get(char, _OTHER)
    return datum


def slip_hash(datum: int, bits: int) -> int:
    """SLIP's HASH: the middle `bits` bits of the 35-bit magnitude of `datum`, squared."""
    magnitude = datum & (1 << 35) - 1  # the 7090's top bit is the sign
    return (magnitude * magnitude) >> (35 - bits // 2) & (1 << bits) - 1


def remember(
    rule: MemoryRule, words: Sequence[str], tags: Mapping[str, frozenset[str]]
) -> str | None:
    """The form of `words` to keep for later, or None if the chosen form does not match."""
    if not rule.forms or not words:
        return None
    bits = len(rule.forms).bit_length() - 1
    pattern, pieces = rule.forms[slip_hash(bcd_word(words[-1]), bits)]
    parts = decompose(pattern, words, tags)
    return None if parts is None else " ".join(reassemble(pieces, parts))
