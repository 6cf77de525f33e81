"""Failures that repeat, kept calm: a backoff that one success does not undo, and a failure
logged once a minute with how often it happened, instead of a traceback each time.

A full disk or a database locked by another process makes every try fail at once; a poller
whose backoff went back to its first step after every successful fetch retried five times a
second and wrote a traceback each time. Here a success only takes one step back down, and a
failure that keeps happening is one line a minute, with its count and since when.
"""

from __future__ import annotations

import logging
import time

from engines.errors import typed_line

LOG_EVERY = 60.0  # seconds between two lines about the same failure


class Backoff:
    """Seconds to wait before the next try: `first` after one failure, doubling up to `most`.
    A success takes one step back down (it does not reset: a fetch that works between two
    writes that fail must not make the loop retry at full speed)."""

    def __init__(self, first: float = 0.2, most: float = 8.0) -> None:
        self.first, self.most = first, most
        self.failures = 0

    def failed(self) -> float:
        self.failures += 1
        return min(self.most, self.first * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures = max(0, self.failures - 1)


class RepeatedFailure:
    """One failing thing (`what`: "the store cannot write"), logged on its first failure with
    its traceback, then at most once every `every` seconds with the count since the last line;
    its recovery is logged once. `since` is when the failures began (time.time()), None while
    it works."""

    def __init__(self, logger: logging.Logger, what: str, every: float = LOG_EVERY) -> None:
        self.log, self.what, self.every = logger, what, every
        self.since: float | None = None
        self.count = 0  # failures since `since`
        self._unlogged = 0
        self._logged_at = 0.0  # time.monotonic() of the last line

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since, self.count = time.time(), 0
            self.log.warning("%s: %s", self.what, typed_line(exc), exc_info=exc)
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1
        self.count += 1
        if self._unlogged and now - self._logged_at >= self.every:
            self.log.warning("%s: %d more times in %.0f s (failing since %s): %s", self.what,
                             self._unlogged, now - self._logged_at, _clock(self.since),
                             typed_line(exc))
            self._logged_at, self._unlogged = now, 0

    def succeeded(self) -> None:
        if self.since is not None:
            self.log.info("%s: works again after %d failures in %.0f s", self.what,
                             self.count, time.time() - self.since)
            self.since, self.count, self._unlogged = None, 0, 0


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))
