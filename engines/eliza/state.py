"""What ELIZA remembers of one chat, as the JSON-able dict the router stores per chat.

The 1966 program kept these in its one running copy of the script; we keep them per chat so
that one engine can talk to many chats at once, and /reset starts a chat over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COUNTER_CYCLE = 4  # "a certain counting mechanism": 1, 2, 3, 4, 1, ... one step per message


@dataclass
class ChatState:
    counter: int = 1  # a memory may be recalled only when it stands at 4
    next_reassembly: dict[str, int] = field(default_factory=dict)  # rule id -> index
    memories: list[str] = field(default_factory=list)  # oldest first

    def step_counter(self) -> int:
        self.counter = self.counter % COUNTER_CYCLE + 1
        return self.counter

    def take_reassembly(self, rule_id: str, count: int) -> int:
        """The index of the reassembly to use now for this rule; the next use takes the next."""
        index = self.next_reassembly.get(rule_id, 0) % count
        self.next_reassembly[rule_id] = (index + 1) % count
        return index

    def to_json(self) -> dict[str, Any]:
        return {"counter": self.counter, "next_reassembly": dict(self.next_reassembly),
                "memories": list(self.memories)}

    @classmethod
    def from_json(cls, data: Any) -> ChatState:
        """A stored state; anything malformed (an old or hand-edited row) starts over."""
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
