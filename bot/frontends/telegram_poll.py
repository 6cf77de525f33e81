"""Long polling that confirms an update to Telegram only after it is kept.

Telegram forgets an update once a getUpdates call asks for a higher offset. PTB's own updater
asks for the next batch as soon as it has queued one, so a bot killed a moment later has
confirmed updates it never handled. This loop writes each update to the durable inbox first
and only then moves the offset past it; the next getUpdates call is the confirmation.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter

from bot.calm import Backoff, RepeatedFailure
from bot.frontends.telegram_reply import BACKOFF_FIRST, BACKOFF_MOST, retry_seconds

log = logging.getLogger(__name__)

Keep = Callable[[Update], Awaitable[bool]]  # True: new, hand it on; False: seen before
Hand = Callable[[Update], Awaitable[None]]


class Poller:
    def __init__(self, bot: Bot, keep: Keep, hand: Hand, *, timeout: float,
                 allowed_updates: list[str]) -> None:
        self.bot, self.keep, self.hand = bot, keep, hand
        self.timeout, self.allowed_updates = timeout, allowed_updates
        self.offset = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telegram-poll")
        self._task.add_done_callback(_say_why_it_ended)

    async def stop(self) -> None:
        """Take nothing more: what was fetched and kept is handled; nothing new is confirmed."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        # One backoff for the whole round: a fetch that works does not undo the failure of
        # keeping what it fetched (a full disk fails every keep at once).
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MOST)
        fetching = RepeatedFailure(log, "telegram: getUpdates failed; trying again")
        keeping = RepeatedFailure(log, "telegram: could not keep an update; trying again")
        while True:
            try:
                updates = await self._fetch()
                fetching.succeeded()
            except (InvalidToken, asyncio.CancelledError):
                raise
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
                continue
            except (NetworkError, Conflict) as exc:  # Telegram away, or a second poller
                fetching.failed(exc)
                await asyncio.sleep(backoff.failed())
                continue
            try:
                for update in updates:
                    if await self.keep(update):
                        await self.hand(update)
                    self.offset = update.update_id + 1  # confirmed by the next getUpdates
            except Exception as exc:  # a locked database, say: fetch again from the first not kept
                keeping.failed(exc)
                await asyncio.sleep(backoff.failed())
                continue
            if updates:
                keeping.succeeded()
            backoff.succeeded()

    async def _fetch(self) -> tuple[Any, ...]:
        return await self.bot.get_updates(
            offset=self.offset, timeout=dtm.timedelta(seconds=self.timeout),
            allowed_updates=self.allowed_updates,
            read_timeout=self.timeout + 10,  # the long poll itself may take `timeout`
        )


def _say_why_it_ended(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("telegram: polling stopped: %s", task.exception())
