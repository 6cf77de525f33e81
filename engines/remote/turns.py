"""The remote engine's request queue: at most [engines.remote] max_concurrent requests at the
server at once, and those that wait are let in chats in turn, so one chat's burst waits
behind its own requests instead of in front of everyone's.

Round robin by chat, as the local transformer's batch (engines/transformer/turns.py): a freed
place goes to the waiting chat served longest ago (one never served first), and the last free
place is kept for a chat with no request at the server, so a newcomer starts as soon as any
place is free.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

MAX_CHATS = 10_000  # chats remembered for their turn; past this the longest quiet go

class FairQueue:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}  # chat -> its requests at the server now
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}  # chat -> its waiters
        self._served: dict[str, int] = {}  # chat -> the count of starts when it last started
        self._starts = 0

    @property
    def running(self) -> int:
        return sum(self._running.values())

    @contextlib.asynccontextmanager
    async def turn(self, chat: str) -> AsyncIterator[None]:
        """Hold one of the server's places for `chat` while the block runs."""
        await self._enter(chat)
        try:
            yield
        finally:
            self._leave(chat)

    async def _enter(self, chat: str) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(chat, deque()).append(waiter)
        self._let_in()  # at once, if there is room and it is our turn
        try:
            await waiter  # _let_in counts us as running before it wakes us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # let in, then cancelled: give back
                self._leave(chat)
            else:
                self._forget(chat, waiter)
            raise

    def _may_start(self, chat: str) -> bool:
        free = self.limit - self.running
        return free > 1 or (free == 1 and not self._running.get(chat))

    def _start(self, chat: str) -> None:
        self._running[chat] = self._running.get(chat, 0) + 1
        self._starts += 1
        self._served[chat] = self._starts
        if len(self._served) > MAX_CHATS:
            recent = sorted(self._served.items(), key=lambda item: item[1])[MAX_CHATS // 2:]
            self._served = dict(recent)

    def _leave(self, chat: str) -> None:
        self._running[chat] -= 1
        if not self._running[chat]:
            del self._running[chat]
        self._let_in()

    def _let_in(self) -> None:
        """Start waiters, chats in turn, while there is room for them."""
        while self.running < self.limit:
            ready = [chat for chat in self._waiting if self._may_start(chat)]
            if not ready:
                return
            chat = min(ready, key=lambda c: self._served.get(c, 0))  # ties: longest waiting
            waiters = self._waiting[chat]
            self._start(chat)
            waiters.popleft().set_result(None)
            if not waiters:
                del self._waiting[chat]

    def _forget(self, chat: str, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiting.get(chat)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiting[chat]
