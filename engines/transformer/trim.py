"""A reply cut by its token cap ends at its last complete sentence, never in the middle of one.

A model stopped at `max_new_tokens` stops wherever it was ("... So,"). Since text once streamed
cannot be taken back, a reply streams a sentence at a time: what follows the last sentence end
is held until the reply ends. If it ended by itself the held rest follows; if it was cut, the
rest is dropped, and a reply without any complete sentence ends at its last whole word with an
ellipsis instead.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"
# A sentence ends at . ! ? or … (and closing quotes or brackets after them) before white space,
# or at the end of a line; "3.5" and "e.g.," do not end one.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|\S(?=[ \t]*\n)")
_LIST_NUMBER = re.compile(r"\s*(\d+|[A-Za-z])[.)]")
# What a cut-off fragment should not end with before its ellipsis.
_DANGLING = " \t\n,;:-–—(\"'“„«"


def last_sentence_end(text: str) -> int:
    """Where the last complete sentence of `text` ends (0: none); the text's own end counts
    as white space after it, so a text that ends with a full stop is complete."""
    ends = _ends(text + " ")
    return min(ends[-1], len(text)) if ends else 0


def trim_cut(text: str) -> str:
    """A cut reply's text as it is shown: up to its last complete sentence, or, without one,
    up to its last whole word and an ellipsis."""
    end = last_sentence_end(text)
    if end:
        return text[:end].rstrip()
    words = text.rstrip()
    cut = max(words.rfind(" "), words.rfind("\n"))
    if cut > 0:  # the last word may be cut in half: drop it
        words = words[:cut]
    words = words.rstrip(_DANGLING)
    return words + ELLIPSIS if words else ""


class SentenceStream:
    """Releases a growing reply a sentence at a time; `finish` says how it ends."""

    def __init__(self) -> None:
        self.text = ""
        self.sent = 0  # how much of `text` went out

    def add(self, delta: str) -> str:
        """What of the reply can go out now: up to its last complete sentence."""
        self.text += delta
        end = _confirmed_end(self.text)
        if end <= self.sent:
            return ""
        out, self.sent = self.text[self.sent:end], end
        return out

    def finish(self, cut: bool) -> str:
        """The rest: all of it for a reply that ended by itself; for a cut one, nothing after
        its last complete sentence (or its words with an ellipsis, if none went out)."""
        if not cut:
            out, self.sent = self.text[self.sent:], len(self.text)
            return out
        if self.sent:
            end = last_sentence_end(self.text)
            out = self.text[self.sent:end].rstrip() if end > self.sent else ""
        else:
            out = trim_cut(self.text)
        self.sent = len(self.text)
        return out


def _confirmed_end(text: str) -> int:
    """The last sentence end that more text cannot change: one followed by white space."""
    ends = _ends(text)
    return ends[-1] if ends else 0


def _ends(text: str) -> list[int]:
    """Every sentence end, but not a list's number ("2. ") at the start of a line."""
    return [m.end() for m in _SENTENCE_END.finditer(text)
            if not _LIST_NUMBER.fullmatch(text[text.rfind("\n", 0, m.start()) + 1:m.end()])]
