"""What a reply reads, kept in memory between a chat's messages: its engine state and its last
turns. Both are read once per process and then kept up to date by the store's own writes (all
writes to those tables go through this process's store). Whatever deletes or hides what they
hold (/reset, /forget, /optout, retention, a message added some other way) drops them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engines.base import Turn


@dataclass
class CachedState:
    """A chat's engine state as the engine last left it, and as it is stored (its JSON; ""
    when no row exists): written only when the two differ."""

    value: dict[str, Any]
    stored: str


@dataclass
class CachedHistory:
    """A chat's last `limit` turns since `history_from` (/reset), oldest first."""

    history_from: int
    limit: int
    turns: list[Turn]

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)
        if len(self.turns) > self.limit:
            del self.turns[: len(self.turns) - self.limit]


class ReplyCache:
    def __init__(self) -> None:
        self.states: dict[tuple[int, str], CachedState] = {}
        self.histories: dict[int, CachedHistory] = {}
        # Bumped whenever cached state is dropped: a reply that read its state before then
        # must not write that state back (it may hold what /forget just deleted).
        self.state_epoch = 0
        # Bumped whenever a history is dropped: one read from the database meanwhile may
        # already be stale, and is used once but not kept.
        self.history_epoch = 0

    def drop(self, chat_id: int | None = None) -> None:
        """Forget one chat's state and history, or every chat's."""
        self.state_epoch += 1
        if chat_id is None:
            self.states.clear()
        else:
            for key in [key for key in self.states if key[0] == chat_id]:
                del self.states[key]
        self.drop_history(chat_id)

    def drop_history(self, chat_id: int | None = None) -> None:
        self.history_epoch += 1
        if chat_id is None:
            self.histories.clear()
        else:
            self.histories.pop(chat_id, None)
