"""Work the event loop hands the generation worker besides replies: loading an adapter, scoring
next words, /probe. A call made of passes (it returns a generator, chunks.py) runs one pass at a
time, so a long /probe takes turns with the batch's decode steps instead of stalling them; which
chat's call (or prefill) runs the step's one reading pass is the worker's choice (turns.py)."""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

from engines.transformer.chunks import next_pass
from engines.transformer.request import Call, settle_soon


class Calls:
    def __init__(self) -> None:
        self._waiting: list[Call] = []  # in arrival order; a call under way keeps its place
        self._passes: dict[int, Generator[Any, Any, Any]] = {}  # id(call): its passes so far

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, call: Call) -> None:
        self._waiting.append(call)

    def waiting(self) -> list[Call]:
        """The calls to run, in arrival order. A call its caller gave up on (a /probe that
        timed out) is dropped unrun; a stale read of its future is only a step late."""
        for call in [c for c in self._waiting if c.future.done()]:
            self._finish(call)
        return list(self._waiting)

    def fail_all(self, error: BaseException) -> None:
        for call in list(self._waiting):
            self._finish(call)
            settle_soon(call, None, error)

    def turn(self, call: Call) -> BaseException | None:
        """Start `call` or run its next pass; settle it once done. Returns the error of a call
        that failed, for the worker to judge (a fatal device error stops it)."""
        try:
            done, result = self._one_pass(call)
        except BaseException as exc:  # the worker stopping (a bug): the caller still hears
            self._settle(call, None, exc)
            if not isinstance(exc, Exception):
                raise
            return exc
        if done:
            self._settle(call, result)
        return None

    def _one_pass(self, call: Call) -> tuple[bool, Any]:
        """Start the call, or run its next pass: (whether it is done, its result)."""
        passes: Generator[Any, Any, Any] | None = self._passes.get(id(call))
        if passes is None:
            started = call.fn()
            if not inspect.isgenerator(started):
                return True, started
            passes = self._passes[id(call)] = started
        result = next_pass(passes)
        return inspect.getgeneratorstate(passes) == inspect.GEN_CLOSED, result

    def _settle(self, call: Call, result: Any, error: BaseException | None = None) -> None:
        self._finish(call)
        settle_soon(call, result, error)

    def _finish(self, call: Call) -> None:
        self._waiting.remove(call)
        passes = self._passes.pop(id(call), None)
        if passes is not None:
            passes.close()
