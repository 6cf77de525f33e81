"""Which waiting replies join the batch next: chats take turns, so one chat's burst waits
behind its own requests instead of in front of everyone's.

Round robin by chat: each chat's oldest waiting reply first, the chat served longest ago
first (one never served before all others); then each chat's second; and so on. And the
batch's last free row is kept for a chat that has no reply running: a chat with replies in
the batch may fill it up to one row short, so a newcomer always starts at the next step
while any row is free, however many replies the busy chat has queued.

The same order picks whose reading pass runs in a step (`next_of`: a prefill under way, a
call, or the next group); the worker keeps a second Turns for it, apart from the batch's.
"""

from __future__ import annotations

import itertools
from typing import Any

MAX_CHATS = 10_000  # chats remembered for their turn; past this the longest quiet go


class Turns:
    def __init__(self) -> None:
        self._served: dict[str, int] = {}  # chat -> the admission count when last served
        self._count = 0

    def pick(self, waiting: list[Any], max_batch: int, running: list[Any]) -> list[Any]:
        """Up to the batch's free rows of `waiting` (requests with a `chat`), in turn order.
        `running`: the requests in the batch now."""
        busy = {request.chat for request in running}
        free = max_batch - len(running)
        picked: list[Any] = []
        for request in self._in_turn(waiting):
            if free <= 0:
                break
            if request.chat in busy and free == 1:
                continue  # the last row waits for a chat with nothing running
            picked.append(request)
            busy.add(request.chat)
            free -= 1
        return picked

    def oldest_each(self, waiting: list[Any]) -> list[Any]:
        """The oldest of each chat's waiting items, the chat served longest ago first."""
        return [by_chat[0] for by_chat in self._by_chat(waiting)]

    def next_of(self, readers: list[tuple[Any, tuple[str, ...]]]) -> Any | None:
        """Of `readers` (each an item with the chats it works for), the one with the chat
        served longest ago (one never served before all others; ties: the first); its chats
        go to the back of the turn order."""
        if not readers:
            return None
        item, chats = min(readers, key=lambda r: min(self._served.get(c, 0) for c in r[1]))
        self._mark(chats)
        return item

    def served(self, requests: list[Any]) -> None:
        """These joined the batch: their chats go to the back of the turn order."""
        self._mark([request.chat for request in requests])

    def _mark(self, chats: Any) -> None:
        for chat in chats:
            self._count += 1
            self._served[chat] = self._count
        if len(self._served) > MAX_CHATS:
            recent = sorted(self._served.items(), key=lambda item: item[1])[MAX_CHATS // 2:]
            self._served = dict(recent)

    def _in_turn(self, waiting: list[Any]) -> list[Any]:
        rounds = itertools.zip_longest(*self._by_chat(waiting))
        return [request for round_ in rounds for request in round_ if request is not None]

    def _by_chat(self, waiting: list[Any]) -> list[list[Any]]:
        """Each chat's waiting items, oldest first; the chat served longest ago first."""
        by_chat: dict[str, list[Any]] = {}
        for request in waiting:
            by_chat.setdefault(request.chat, []).append(request)
        chats = sorted(by_chat, key=lambda chat: self._served.get(chat, 0))  # stable: arrival
        return [by_chat[chat] for chat in chats]
