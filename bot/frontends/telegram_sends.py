"""Sends answered on a thread of their own, so that a sent message's id is recorded the
instant its answer is read, not when the bot's busy event loop gets round to it.

A bot killed after Telegram carried out a send and before the bot recorded the new message's
id sends that reply again after its restart. bench/telegram_window.py measured that window in
a burst (50 messages from 5 people, replies streaming): a median 16 ms, nearly all of it the
answer waiting in the event loop's queue (its socket was ready; the task that reads it waits
behind every other ready task), and well under 1 ms for PTB's parsing and the bot's own path
to the journal after that. So sendMessage requests go to an HTTP client on a thread with a
loop of its own, which reads the answer as soon as it arrives and hands the new id to the
`on_answer` hook set by the reply that sends (a contextvar: it travels with the request into
that thread) before anything else happens; the hook writes the journal (telegram_sent.py).
Every other request stays on the bot's loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, HTTPXRequest, RequestData

log = logging.getLogger(__name__)
T = TypeVar("T")

OWN_THREAD = True  # False: sends on the bot's loop, as before (bench/telegram_window.py's baseline)
SENDS = ("/sendMessage",)

# Set by the reply that sends: called with the new message's id on the sends' thread.
on_answer: ContextVar[Callable[[str], None] | None] = ContextVar("telegram_on_answer",
                                                                 default=None)


class ThreadedSends(BaseRequest):
    """PTB's request object for the bot: sends on their own thread, the rest as PTB does."""

    def __init__(self) -> None:
        self._main = HTTPXRequest()  # what ApplicationBuilder would build by default
        self._own: HTTPXRequest | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._main.read_timeout

    async def initialize(self) -> None:
        await self._main.initialize()
        if OWN_THREAD and self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever,
                                            name="telegram-sends", daemon=True)
            self._thread.start()
            self._own = HTTPXRequest()
            await self._there(self._own.initialize())

    async def shutdown(self) -> None:
        await self._main.shutdown()
        loop, thread, self._loop = self._loop, self._thread, None
        if loop is None or thread is None or self._own is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._own.shutdown(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        timeouts = {"read_timeout": read_timeout, "write_timeout": write_timeout,
                    "connect_timeout": connect_timeout, "pool_timeout": pool_timeout}
        if self._loop is None or self._own is None or not url.endswith(SENDS):
            return await self._main.do_request(url, method, request_data, **timeouts)
        return await self._there(self._send(self._own, url, method, request_data, timeouts))

    @staticmethod
    async def _send(client: HTTPXRequest, url: str, method: str,
                    request_data: RequestData | None, timeouts: dict[str, Any]
                    ) -> tuple[int, bytes]:
        """On the sends' thread: the request, and the new id to the hook at once."""
        code, payload = await client.do_request(url, method, request_data, **timeouts)
        hook = on_answer.get()
        if hook is not None and code == 200:
            try:
                hook(str(json.loads(payload)["result"]["message_id"]))
            except Exception:  # the id still reaches the reply the usual way
                log.exception("telegram: could not record a sent message's id at once")
        return code, payload

    async def _there(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the sends' loop (with this context: the hook goes along) and wait."""
        assert self._loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))
