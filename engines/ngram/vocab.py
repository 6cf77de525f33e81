"""Words <-> integer ids. Ids 0, 1, 2 are <unk>, <s>, </s>, as in KenLM."""

from __future__ import annotations

from collections.abc import Iterable

UNK, BOS, EOS = 0, 1, 2
SPECIALS = ("<unk>", "<s>", "</s>")


class Vocab:
    def __init__(self, words: Iterable[str] = SPECIALS) -> None:
        self.words: list[str] = []
        self.ids: dict[str, int] = {}
        for word in words:
            self.add(word)
        if self.words[:3] != list(SPECIALS):
            raise ValueError("a vocabulary starts with <unk>, <s>, </s>")

    def __len__(self) -> int:
        return len(self.words)

    def add(self, word: str) -> int:
        """The id of `word`, new ones appended (ids never change once given)."""
        found = self.ids.get(word)
        if found is None:
            found = self.ids[word] = len(self.words)
            self.words.append(word)
        return found

    def encode(self, tokens: Iterable[str], grow: bool = False) -> list[int]:
        if grow:
            return [self.add(token) for token in tokens]
        get = self.ids.get
        return [get(token, UNK) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids]
