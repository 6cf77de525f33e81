"""Trips to the connection's thread, shared under load: calls that arrive while a trip of
their kind is under way wait and go together in the next one. One chat alone goes at once, as
before; fifty at once share trips (and, for writes, commits) instead of queueing one by one
behind each other on the thread (bench/profile_router.txt: the trips were the cost)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

Call = Callable[[sqlite3.Connection], Any]
# Runs calls in one trip; returns, per call, (True, result) or (False, the exception it raised).
Runner = Callable[[list[Call]], Awaitable[list[tuple[bool, Any]]]]


class SharedTrips:
    def __init__(self, run: Runner) -> None:
        self._run = run
        self._busy = False  # a trip is under way, or a flusher is on its way
        self._waiting: list[tuple[Call, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def __call__(self, call: Call) -> Any:
        """Run `call` on the thread and return what it returns. Once asked for, it runs even
        if the caller stops waiting (a write asked for lands: the reply it stores was sent)."""
        if self._busy:
            future = asyncio.get_running_loop().create_future()
            self._waiting.append((call, future))
            return await future
        self._busy = True
        try:
            [(ok, value)] = await self._run([call])
        finally:
            self._hand_on()
        if not ok:
            raise value
        return value

    def _hand_on(self) -> None:
        if self._waiting:  # they came during this trip: they go in the next, together
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        else:
            self._busy = False

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    outcomes = await self._run([call for call, _ in batch])
                except Exception as exc:  # the whole trip failed (BEGIN or COMMIT)
                    outcomes = [(False, exc)] * len(batch)
                except BaseException:  # this task is cancelled: the loop is closing
                    self._waiting[:0] = batch
                    raise
                _settle(batch, outcomes)
        finally:
            self._busy = False
            for _, future in self._waiting:  # nothing may wait forever
                future.cancel()
            self._waiting = []


def _settle(batch: list[tuple[Call, asyncio.Future]], outcomes: list[tuple[bool, Any]]) -> None:
    for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
        if future.done():  # its caller stopped waiting
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def each(conn: sqlite3.Connection, calls: list[Call]) -> list[tuple[bool, Any]]:
    """Run reads one after the other; one that fails does not stop the others."""
    outcomes = []
    for call in calls:
        try:
            outcomes.append((True, call(conn)))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


def each_in_savepoint(conn: sqlite3.Connection, calls: list[Call]) -> list[tuple[bool, Any]]:
    """Run writes inside the caller's transaction, each undone alone if it fails."""
    if len(calls) == 1:  # alone: its failure fails the transaction, and that is all of it
        return [(True, calls[0](conn))]
    outcomes = []
    for call in calls:
        conn.execute("SAVEPOINT one_call")
        try:
            outcomes.append((True, call(conn)))
        except Exception as exc:
            conn.execute("ROLLBACK TO one_call")
            outcomes.append((False, exc))
        conn.execute("RELEASE one_call")
    return outcomes
