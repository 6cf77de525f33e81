"""German text rules: where a sentence ends, what one token is, how quotes are written.

A period ends no German sentence after an abbreviation ("z. B.", "Dr.", "Nr."), an ordinal
number ("am 3. Oktober") or an initial ("A. Roma"), and a German sentence may start with a
capitalised noun, so the English rule "period, space, capital" splits far too often. Quotes
(„…“, »…«, "…") are one token, '"', so their statistics are not split three ways; hyphenated
compounds ("Machine-Learning-Methoden") and truncated ones ("Ein- und Ausgang") stay whole.
"""

from __future__ import annotations

import re

# Abbreviations that take a period mid-sentence (lower case, without the period).
_WORDS = """abb abk abs abt allg anm bd bsp bspw bzgl bzw ca chr dipl dr ebd evtl exkl ff fr geb
    gegr ggf hl hr hrsg inkl jh jhd jr kap mio mrd nr od orig pkt prof rd sog st std str tel ugs
    usw vgl vs etc"""
ABBREVIATIONS = frozenset(_WORDS.split())
# These often end a sentence as well: before a sentence's start they count as its end.
CAN_END_SENTENCE = frozenset({"usw", "etc"})
# Opening a quote, double and single: everything else that quotes closes one.
DOUBLE_QUOTES = "\"„“”»«"
SINGLE_QUOTES = "‚‘"

_ABBREVIATION = "|".join(sorted((re.escape(a) for a in ABBREVIATIONS), key=len, reverse=True))
_TOKEN = re.compile(
    r"(?:[^\W\d_]\.){2,}"                                # z.B. u.a. d.h. (written without spaces)
    rf"|(?<!\w)(?:{_ABBREVIATION})\.(?=\s*\S)"           # Dr. Nr. usw. (not at the very end)
    r"|(?<!\w)[^\W\d_]\.(?=\s*\S)"                       # z. B., initials: A. Roma
    r"|(?<!\w)\d{1,3}\.(?=\s+\w)"                        # ordinals: am 3. Oktober
    r"|\d+(?:[.,:]\d+)+"                                 # 3.10.2023, 1.000, 2,5, 10:30
    r"|\w+(?:['’\-]\w+)*-(?=\s+(?:und|oder|bis|sowie)\s)"  # Ein- (und Ausgang)
    r"|(?:(?<=\s)|^)-[^\W\d_]\w*(?:-\w+)*"               # (Ein- und) -ausgang
    r"|\w+(?:['’\-]\w+)*"                                # words, inner apostrophes and hyphens
    r"|\.{2,}|…"                                         # an ellipsis is one token
    r"|[^\w\s]",
    re.IGNORECASE,
)
_QUOTES = str.maketrans({**dict.fromkeys(DOUBLE_QUOTES, '"'), **dict.fromkeys(SINGLE_QUOTES, "'")})
# A sentence may end at . ! ? or … (then maybe a closing quote or bracket) before whitespace and
# something that starts a sentence.
_END = re.compile(r"[.!?…]+[\"“”»«'’)\]]*\s+(?=[„»\"'‚(\[A-ZÄÖÜ0-9])")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")  # z. B. -> "b", d.h. -> "d.h"
_LAST_WORD = re.compile(r"(?:^|[\s(\[„»\"'‚])([^\s(\[„»\"'‚]*?)\.+$")


def tokens(text: str) -> list[str]:
    """German tokens as written; every quote mark is '"' (double) or "'" (single)."""
    found = _TOKEN.findall(text)
    return [t.translate(_QUOTES) if len(t) == 1 else ("…" if t[:2] == ".." else t) for t in found]


def split_sentences(flat: str) -> list[str]:
    """One paragraph with its whitespace collapsed -> its sentences."""
    pieces, start = [], 0
    for end in _END.finditer(flat):
        if _ends_sentence(flat[start:end.start() + len(end.group().rstrip())]):
            pieces.append(flat[start:end.end()].strip())
            start = end.end()
    pieces.append(flat[start:].strip())
    return [piece for piece in pieces if piece]


def _ends_sentence(sentence: str) -> bool:
    """Whether the period that closes `sentence` ends it (! ? and … always do)."""
    if not sentence.rstrip("\"“”»«'’)]").endswith("."):
        return True
    last = _LAST_WORD.search(sentence.rstrip("\"“”»«'’)]"))
    word = last.group(1).lower() if last else ""
    if word in CAN_END_SENTENCE:
        return True
    if word in ABBREVIATIONS or _INITIALS.fullmatch(word):
        return False
    return not (word.isdigit() and len(word) <= 3)  # "am 3. Oktober"
