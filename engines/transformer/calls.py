"""Work the event loop hands the generation worker besides replies: loading an adapter, scoring
next words, /probe. A call runs on the worker's thread between two forward passes; a call made
of passes (it returns a generator, chunks.py) runs one pass a step, the oldest first, so a long
/probe takes its turn with the batch's decode steps instead of stalling them."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from engines.transformer.chunks import next_pass


@dataclass
class Call:
    fn: Callable[[], Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop

    def settle(self, result: Any, error: BaseException | None) -> None:
        """Hand the result (or error) to the caller's loop (worker thread)."""
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)


class Calls:
    def __init__(self) -> None:
        self._passes: deque[tuple[Call, Generator[Any, Any, Any]]] = deque()

    def __bool__(self) -> bool:
        return bool(self._passes)

    def run(self, call: Call) -> None:
        """Run `call`; if it is made of passes, queue them (one a step from the next on)."""
        try:
            result, error = call.fn(), None
        except Exception as exc:
            result, error = None, exc
        if inspect.isgenerator(result):
            self._passes.append((call, result))
        else:
            call.settle(result, error)

    def next_pass(self) -> None:
        """One pass of the oldest call made of passes; it goes to the back if not done. A
        call its caller gave up on (a /probe that timed out) is dropped, its passes unrun."""
        while self._passes and self._passes[0][0].future.done():  # a stale read: a step late
            self._passes.popleft()[1].close()
        if not self._passes:
            return
        call, passes = self._passes[0]
        try:
            result = next_pass(passes)
        except BaseException as exc:  # the worker stopping (a bug): the caller still hears
            self._passes.popleft()
            call.settle(None, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._passes.rotate(-1)
        if inspect.getgeneratorstate(passes) == inspect.GEN_CLOSED:
            self._passes.pop()
            call.settle(result, None)

    def fail_all(self, error: BaseException) -> None:
        for call, _ in self._passes:
            call.settle(None, error)
        self._passes.clear()


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
