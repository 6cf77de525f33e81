"""What ELIZA remembers of one chat, as the JSON-able dict the router stores per chat.

The 1966 program kept these in its one running copy of the script; we keep them per chat so
that one engine can talk to many chats at once, and /reset starts a chat over.

A ChatState is a dict, {"counter": ..., "next_reassembly": {...}, "memories": [...]}, that is
its own JSON form: the engine leaves the live object in the chat's `Conversation.state`, so
a router that keeps the state in memory hands it back as it was, and the next message costs
no parsing, checking or copying. Only a state read back from JSON (a plain dict) is checked.
"""

from __future__ import annotations

from typing import Any

COUNTER_CYCLE = 4  # "a certain counting mechanism": 1, 2, 3, 4, 1, ... one step per message


class ChatState(dict):
    def __init__(self, counter: int = 1, next_reassembly: dict[str, int] | None = None,
                 memories: list[str] | None = None) -> None:
        super().__init__(counter=counter, next_reassembly=next_reassembly or {},
                         memories=memories or [])

    @property
    def counter(self) -> int:
        """A memory may be recalled only when it stands at 4."""
        return self["counter"]

    @property
    def next_reassembly(self) -> dict[str, int]:
        """Rule id -> the index of its reassembly to use next."""
        return self["next_reassembly"]

    @property
    def memories(self) -> list[str]:
        """Oldest first."""
        return self["memories"]

    def step_counter(self) -> int:
        counter = self["counter"] % COUNTER_CYCLE + 1
        self["counter"] = counter
        return counter

    def take_reassembly(self, rule_id: str, count: int) -> int:
        """The index of the reassembly to use now for this rule; the next use takes the next."""
        counters = self["next_reassembly"]
        index = counters.get(rule_id, 0) % count
        counters[rule_id] = (index + 1) % count
        return index

    def to_json(self) -> dict[str, Any]:
        """A plain copy, for whoever wants a snapshot (the state itself is JSON-able too)."""
        return {"counter": self.counter, "next_reassembly": dict(self.next_reassembly),
                "memories": list(self.memories)}

    @classmethod
    def from_json(cls, data: Any) -> ChatState:
        """A live state as it is; a stored one checked, where anything malformed (an old or
        hand-edited row) starts over."""
        if type(data) is cls:
            return data
        if not isinstance(data, dict):
            return cls()
        counter = data.get("counter", 1)
        counters = data.get("next_reassembly", {})
        memories = data.get("memories", [])
        if not (isinstance(counter, int) and 1 <= counter <= COUNTER_CYCLE):
            counter = 1
        if not isinstance(counters, dict):
            counters = {}
        counters = {k: v for k, v in counters.items() if isinstance(v, int) and v >= 0}
        if not isinstance(memories, list):
            memories = []
        return cls(counter, counters, [m for m in memories if isinstance(m, str)])
