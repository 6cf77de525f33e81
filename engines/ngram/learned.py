"""What one language learned from people, in two scopes and within a bound.

Each message adds to the k-anonymous counts (people.py: what may answer every chat) and to its
chat's layer (layer.py: what answers that chat alone); withdrawing a message subtracts the same.
The cost of either is that of the message, whatever was learned before. The sequences held in
both together are bounded (`max_entries`): past it, the rarest go first (written once, then at
most twice, ...), the oldest among equals, down to PRUNE_TO of the bound, so pruning happens
once per many messages, and in steps of PRUNE_STEP (the engine lets messages be learned
between steps). The packaged corpora are not held here and never pruned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from engines.ngram.layer import ChatLayer, share
from engines.ngram.people import Key, PeopleCounts, sequences

PRUNE_TO = 0.8  # of the bound, after pruning
PRUNE_STEP = 5_000  # entries dropped per step: a few milliseconds


class Learned:
    def __init__(self, order: int, copy_span: int, k_people: int, max_entries: int) -> None:
        self.order = order
        self.copy_span = copy_span
        self.people = PeopleCounts(order, k_people)
        self.layers: dict[str, ChatLayer] = {}
        self.max_entries = max_entries
        self._person_ids: dict[str, int] = {}
        self.messages: Counter[str] = Counter()  # messages learned and not withdrawn, per person
        self.pruned = 0  # sequences dropped for the bound, since the start
        self._layer_entries = 0  # all layers' entries together
        self._at_most = 1  # pruning drops what was written this often or less

    @property
    def entries(self) -> int:
        return len(self.people) + self._layer_entries

    @property
    def over(self) -> bool:
        return self.entries > self.max_entries

    def _layer(self, chat: str) -> ChatLayer:
        layer = self.layers.get(chat)
        if layer is None:
            layer = self.layers[chat] = ChatLayer(self.order, self.copy_span)
        return layer

    def add(self, person: str, chat: str, sentences: Sequence[Sequence[int]]) -> None:
        who = self._person_ids.setdefault(person, len(self._person_ids))
        self.people.add(who, self._sequences(sentences))
        layer = self._layer(chat)
        before = layer.entries
        for sentence in sentences:
            layer.add(sentence)
        self._layer_entries += layer.entries - before
        self.messages[person] += 1

    def subtract(self, person: str, chat: str, sentences: Sequence[Sequence[int]]) -> bool:
        """Take one message back (counts never go below zero); False (and nothing done) if
        `person` never taught anything."""
        if person not in self._person_ids:
            return False
        self.people.subtract(self._person_ids[person], self._sequences(sentences))
        layer = self.layers.get(chat)
        if layer is not None:
            before = layer.entries
            for sentence in sentences:
                layer.add(sentence, -1)
            self._layer_entries += layer.entries - before
            if not layer.entries:
                del self.layers[chat]
        self.messages[person] -= 1
        if self.messages[person] <= 0:
            del self.messages[person]
        return True

    def _sequences(self, sentences: Sequence[Sequence[int]]) -> Counter[Key]:
        found: Counter[Key] = Counter()
        for sentence in sentences:
            found.update(sequences(sentence, self.order))
        return found

    def _prune_layer(self, layer: ChatLayer, wanted: int) -> int:
        before = layer.entries
        gone = layer.prune(wanted, self._at_most)
        self._layer_entries += layer.entries - before
        return gone

    def prune(self, budget: int = PRUNE_STEP) -> bool:
        """Drop up to `budget` of the rarest entries towards PRUNE_TO of the bound; True once
        there."""
        target = int(self.max_entries * PRUNE_TO)
        while budget > 0 and self.entries > target:
            entries = self.entries
            wanted = min(entries - target, budget)
            # from each part in proportion to its size: each keeps its newest
            gone = self.people.prune(share(wanted, len(self.people), entries), self._at_most)
            for layer in self.layers.values():
                if share(wanted, layer.entries, entries):
                    gone += self._prune_layer(layer, share(wanted, layer.entries, entries))
            if not gone:  # every part too small for a share: the biggest layer gives them
                biggest = max(self.layers.values(), key=lambda x: x.entries, default=None)
                gone = self._prune_layer(biggest, wanted) if biggest else 0
            self.pruned += gone
            budget -= max(gone, 1)
            if not gone:  # nothing this rare is left: the next rarest
                self._at_most *= 2
        for chat in [c for c, layer in self.layers.items() if not layer.entries]:
            del self.layers[chat]
        if self.entries <= target:
            self._at_most = 1
            return True
        return False
