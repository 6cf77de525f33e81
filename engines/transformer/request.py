"""A reply's life between the event loop and the generation worker's thread.

A Request is created on the loop and read there with `deltas()`; the worker appends its tokens
and posts its events, which reach the loop in one wake-up per step (`deliver_soon`). A `Call`
is a function the loop asks the worker to run between two forward passes; its result or error
settles the loop's future (`settle_soon`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from engines.transformer.prefix import key_of


class GenerationError(Exception):
    """A reply that could not be finished; the message says why."""


class Request:
    """One reply: created on the event loop, advanced by the worker, read with `deltas()`."""

    def __init__(self, prompt_ids: list[int], adapter: str, max_new_tokens: int,
                 shared: int = 0, chat: str = "") -> None:
        self.prompt_ids, self.adapter, self.chat = prompt_ids, adapter, chat  # chat: for turns
        # The beginning that other prompts share (the system prompt), at most all but one token.
        self.prefix_key = key_of(adapter, prompt_ids, min(shared, len(prompt_ids) - 1))
        self.max_new_tokens = max_new_tokens
        self.cancelled = False  # set on the loop, read by the worker (a bool is atomic enough)
        self.new_tokens: list[int] = []
        self.submitted = time.monotonic()
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self.cut = False  # ended by max_new_tokens or the context, not by an end-of-turn token
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def cancel(self) -> None:
        """Leave the batch at the next step (a closed reply, a timeout, a gone chat)."""
        self.cancelled = True

    async def deltas(self) -> AsyncIterator[str]:
        """The reply's text as it grows; GenerationError if generation failed."""
        while True:
            kind, value = await self._events.get()
            if kind == "delta":
                yield value
            elif kind == "error":
                raise GenerationError(value)
            else:
                return

    # The worker's side: called from its thread, delivered on the loop.
    def _send(self, kind: str, value: str = "") -> None:
        deliver_soon(self._loop, [self._event(kind, value)])

    def _event(self, kind: str, value: str) -> tuple[Request, str, str]:
        if kind != "delta":
            self.finished_at = time.monotonic()
        return self, kind, value


@dataclass
class Call:
    fn: Callable[[], Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    chat: str = ""  # whose turn it takes (turns.py); "" for the engine's own (an adapter load)


def deliver_soon(loop: asyncio.AbstractEventLoop, events: list[tuple[Request, str, str]]) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
        loop.call_soon_threadsafe(_deliver, events)


def _deliver(events: list[tuple[Request, str, str]]) -> None:
    for request, kind, value in events:
        request._events.put_nowait((kind, value))


def settle_soon(call: Call, result: Any, error: BaseException | None) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        call.loop.call_soon_threadsafe(_settle, call.future, result, error)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
