"""A chat's turns: one message (or vote) at a time, in the order they came, with the backlog
bounded.

A group that writes faster than its engine (or its platform's rate limit) answers would
otherwise fall behind without bound: 1,000 messages in a minute, answered one by one over an
hour. With `limit` (the router's [bot] max_backlog) at most that many messages wait; when one
more comes, the oldest waiting message is let go (never a command or a vote, which are always
carried out) and a message taking its turn may hear how many were let go before it, to say
so in one line: at once the first time, then at most once every TELL_EVERY seconds while the
flood lasts, and the rest when the line has cleared, so that a flooded chat reads a few such
lines, not one per message (each would take a turn of the platform's rate limit too).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

TELL_EVERY = 60.0  # seconds between two lines about messages let go, while a flood lasts


@dataclass(eq=False)
class _Ticket:
    granted: asyncio.Future[bool]  # True: its turn; False: let go
    may_let_go: bool


@dataclass
class _Chat:
    busy: bool = False
    waiting: deque[_Ticket] = field(default_factory=deque)
    waiting_to_let_go: int = 0  # waiting tickets that may be let go
    let_go: int = 0  # let go and not yet told of
    told_at: float = float("-inf")


@dataclass(frozen=True)
class Turn:
    let_go: bool = False  # this message was let go: it gets no answer of its own
    tell: int = 0  # how many messages were let go before this one: say so first


class Turns:
    def __init__(self, limit: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit  # 0: no bound
        self._clock = clock
        self._chats: dict[str, _Chat] = {}

    @contextlib.asynccontextmanager
    async def turn(self, chat: str, may_let_go: bool = False) -> AsyncIterator[Turn]:
        """The chat's turn, once every earlier holder is done; a message that `may_let_go`
        may instead be let go while it waits (then the chat is not held)."""
        state = self._chats.setdefault(chat, _Chat())
        if state.busy and not await self._wait(state, may_let_go):
            yield Turn(let_go=True)
            return
        state.busy = True
        try:
            yield Turn(tell=self._tell(state) if may_let_go else 0)
        finally:
            self._next(chat, state)

    def _tell(self, state: _Chat) -> int:
        now = self._clock()
        if not state.let_go or (state.waiting_to_let_go and now - state.told_at < TELL_EVERY):
            return 0
        told, state.let_go, state.told_at = state.let_go, 0, now
        return told

    async def _wait(self, state: _Chat, may_let_go: bool) -> bool:
        ticket = _Ticket(asyncio.get_running_loop().create_future(), may_let_go)
        state.waiting.append(ticket)
        state.waiting_to_let_go += may_let_go
        self._bound(state)
        try:
            return await ticket.granted
        except asyncio.CancelledError:
            if ticket in state.waiting:
                state.waiting.remove(ticket)
                state.waiting_to_let_go -= ticket.may_let_go
            elif not ticket.granted.cancelled() and ticket.granted.result():
                state.busy = False  # granted as it was cancelled: pass the turn on
                self._pass_on(state)
            raise

    def _bound(self, state: _Chat) -> None:
        while self.limit and state.waiting_to_let_go > self.limit:
            oldest = next(t for t in state.waiting if t.may_let_go)
            state.waiting.remove(oldest)
            state.waiting_to_let_go -= 1
            if not oldest.granted.done():  # else cancelled as it waited: gone already
                state.let_go += 1
                oldest.granted.set_result(False)

    def _next(self, chat: str, state: _Chat) -> None:
        state.busy = False
        self._pass_on(state)
        if not state.busy and not state.waiting and not state.let_go:
            self._chats.pop(chat, None)

    def _pass_on(self, state: _Chat) -> None:
        while not state.busy and state.waiting:
            ticket = state.waiting.popleft()
            state.waiting_to_let_go -= ticket.may_let_go
            if ticket.granted.done():  # cancelled as it waited (its task has yet to hear it)
                continue
            state.busy = True  # held for the ticket from now: nobody overtakes it
            ticket.granted.set_result(True)

    def waiting(self, chat: str) -> int:
        state = self._chats.get(chat)
        return len(state.waiting) if state else 0
