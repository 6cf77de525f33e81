"""A streamed reply on a chat platform: send the first chunk, then edit the message as the
engine produces more, at most once per interval; the final text is always written, and text
longer than the platform allows is split into several messages.

Frontends give it two coroutines, `send(text) -> message id` and `edit(message_id, text)`,
that already deal with their platform's rate limits, and may give `may_update`, asked before
each interim write: a platform whose budget is running low keeps it for the final text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from bot.events import Sink

Send = Callable[[str], Awaitable[str]]
Edit = Callable[[str, str], Awaitable[None]]


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line break or a space where possible."""
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", limit // 2, limit + 1)
        if cut < 0:
            cut = text.rfind(" ", limit // 2, limit + 1)
        at_separator = cut >= 0  # a separator found right at `limit` is dropped too
        if not at_separator:
            cut = limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n ") if at_separator else text[cut:]
    if text or not parts:
        parts.append(text)
    return parts


class StreamingSink(Sink):
    def __init__(
        self, send: Send, edit: Edit, *, limit: int, interval: float,
        clock: Callable[[], float] = time.monotonic, sent: list[str] | None = None,
        may_update: Callable[[], bool] = lambda: True,
    ) -> None:
        self._send, self._edit, self._may_update = send, edit, may_update
        self.limit, self.interval = limit, interval
        self._clock = clock
        # Platform ids of the messages of this reply, in order; `sent` ones (by a run before a
        # restart) show something unknown, so they are edited to whatever comes.
        self._ids: list[str] = list(sent or [])
        self._shown: list[str | None] = [None] * len(self._ids)
        self._last_write = float("-inf")

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    async def update(self, text: str) -> None:
        if not text.strip() or self._clock() - self._last_write < self.interval:
            return
        if not self._may_update():
            return
        # While streaming, only the first message grows; the rest appears at the end.
        await self._write(0, split_text(text, self.limit)[0])

    async def finish(self, text: str) -> list[str]:
        for index, part in enumerate(split_text(text or "…", self.limit)):
            await self._write(index, part)
        return list(self._ids)

    async def _write(self, index: int, part: str) -> None:
        if index < len(self._ids):
            if self._shown[index] != part:  # platforms refuse an edit that changes nothing
                await self._edit(self._ids[index], part)
                self._shown[index] = part
        else:
            self._ids.append(await self._send(part))
            self._shown.append(part)
        self._last_write = self._clock()
