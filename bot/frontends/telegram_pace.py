"""Telegram's limit on messages to one group: about 20 a minute, edits included. Past it the
Bot API answers 429 and names a wait, sometimes of many seconds, for the whole group.

A group's replies share one ChatPace: at most `limit` requests in any `window` seconds. Sends
and final texts wait for a slot; the edits that show a reply growing are optional, so a stream
shows them only while the group has slots to spare, and leaves the rest for what must go out.
Private chats are not paced: Telegram allows them about a message a second, which the
streamed reply's edit_interval keeps.

Why not PTB's AIORateLimiter: its per-group leaky bucket lets 20 through at once and then one
every 3 s (close to 40 in the first minute), it makes every request wait, so a stream would
queue stale edits instead of skipping them, and it needs aiolimiter; 429s are already retried
by `patiently` in telegram_reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

IN_FLIGHT_RECHECK = 0.05  # seconds: every slot is taken by a request still on its way
MOST_KEPT = 1000  # group paces kept before the idle ones are forgotten


class ChatPace:
    """At most `limit` requests in any `window` seconds. A request is counted from when it
    is sent until `window` seconds after its answer: Telegram saw it somewhere in between,
    so no window of Telegram's own holds more than `limit`."""

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window = limit, window
        self._clock = clock
        self._answered: deque[float] = deque()  # when recent requests were answered, in order
        self._in_flight = 0

    def free(self) -> int:
        """Requests that could be made now without waiting."""
        horizon = self._clock() - self.window
        while self._answered and self._answered[0] <= horizon:
            self._answered.popleft()
        return self.limit - self._in_flight - len(self._answered)

    def spare(self) -> bool:
        """Whether an optional request (a stream's interim edit) may go: it leaves half the
        window's slots for sends and final texts."""
        return self.free() > self.limit // 2

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot, hold it for one request."""
        while self.free() <= 0:
            if self._answered:
                await asyncio.sleep(max(0.0, self._answered[0] + self.window - self._clock()))
            else:
                await asyncio.sleep(IN_FLIGHT_RECHECK)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._answered.append(self._clock())

    def stream_interval(self, interval: float) -> float:
        """The pause between a stream's interim edits: no shorter than `interval`, and long
        enough that one stream alone stays within its half of the window."""
        return max(interval, self.window / max(1, self.limit // 2))


class Pacing:
    """The paces of the groups the bot writes to."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._groups: dict[int, ChatPace] = {}

    def for_chat(self, chat_id: int, group: bool) -> ChatPace | None:
        """The group's pace, shared by all its replies; None for a private chat."""
        if not group:
            return None
        if len(self._groups) >= MOST_KEPT:
            self._forget_idle()
        pace = self._groups.get(chat_id)
        if pace is None:
            pace = self._groups[chat_id] = ChatPace(self.limit, self.window)
        return pace

    def _forget_idle(self) -> None:
        for chat_id, pace in list(self._groups.items()):
            if pace.free() == pace.limit:
                del self._groups[chat_id]
