"""Work the event loop hands the generation worker besides replies: loading an adapter, scoring
next words, /probe. Calls wait for their chat's turn (turns.py): between two forward passes each
chat's oldest call runs, so one chat's burst of scoring waits behind itself. A call made of
passes (it returns a generator, chunks.py) runs one pass per turn, so a long /probe takes its
turns with the batch's decode steps instead of stalling them."""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

from engines.transformer.chunks import next_pass
from engines.transformer.request import Call, settle_soon
from engines.transformer.turns import Turns


class Calls:
    def __init__(self, turns: Turns) -> None:
        self._turns = turns
        self._waiting: list[Call] = []  # in arrival order; a call under way keeps its place
        self._passes: dict[int, Generator[Any, Any, Any]] = {}  # id(call): its passes so far

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, call: Call) -> None:
        self._waiting.append(call)

    def run_turns(self) -> BaseException | None:
        """One turn of each chat's oldest call (a call its caller gave up on, such as a /probe
        that timed out, is dropped unrun). Returns the error of a call that failed, for the
        worker to judge (a fatal device error stops it)."""
        for call in [c for c in self._waiting if c.future.done()]:  # a stale read: a step late
            self._finish(call)
        failed = None
        for call in self._turns.one_each(self._waiting):
            failed = self._turn(call) or failed
        return failed

    def fail_all(self, error: BaseException) -> None:
        for call in list(self._waiting):
            self._finish(call)
            settle_soon(call, None, error)

    def _turn(self, call: Call) -> BaseException | None:
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
