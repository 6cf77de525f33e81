"""Turning a growing list of token ids into text deltas that join to the final text."""

from __future__ import annotations


class TextDeltas:
    """Decode a window of the newest tokens each step and hand out what is new.

    The window starts a little before the tokens not yet shown (at the start of the last delta),
    so a tokenizer that writes a token differently at the start of a text (SentencePiece's
    leading space) shows it as it shows it within the text; what the window adds to its own
    beginning is the delta. A step costs the same at the 500th token as at the 5th (decoding the
    whole reply each step made a reply's detokenising grow with its square).
    A byte-level BPE token can end in the middle of a UTF-8 character ("\ufffd" when decoded
    alone), so text is held back until the character is complete. `finish` decodes the whole
    reply once and hands out whatever the deltas have not, so they join to the final decode.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._start = 0  # the window's first token
        self._shown = 0  # the tokens whose text has been handed out
        self.sent = ""

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self._decode(self.ids[self._start:self._shown])
        text = self._decode(self.ids[self._start:])
        if text.endswith("\ufffd") or len(text) <= len(before) or not text.startswith(before):
            return ""
        delta = text[len(before):]
        self._start, self._shown = self._shown, len(self.ids)
        self.sent += delta
        return delta

    def finish(self) -> str:
        """The rest of the reply (a dangling partial character included)."""
        text = self._decode(self.ids)
        if not text.startswith(self.sent):  # a tokenizer that rewrites earlier text
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta

    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self.tokenizer.decode(ids, skip_special_tokens=True,
                                     clean_up_tokenization_spaces=False)
