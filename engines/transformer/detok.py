"""Turning a growing list of token ids into text deltas that join to the final text."""

from __future__ import annotations


class TextDeltas:
    """Decode the whole reply each time and hand out what is new.

    A byte-level BPE token can end in the middle of a UTF-8 character ("\ufffd" when decoded
    alone), so text is held back until the character is complete. Decoding the whole reply
    (short: at most max_new_tokens) keeps the deltas exactly equal to the final decode.
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = ""

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self._decode()
        if text.endswith("\ufffd") or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta

    def finish(self) -> str:
        """The rest of the reply (a dangling partial character included)."""
        text = self._decode()
        if not text.startswith(self.sent):  # a tokenizer that rewrites earlier text
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta

    def _decode(self) -> str:
        return self.tokenizer.decode(
            self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
