"""Retries of a reply's request inside its deadline.

The openai client retries by itself, each try with a full `timeout`: a hung server then holds a
reply for (1 + max_retries) × timeout. A reply's request is made with the client's retries off
and retried here instead, by the same rules (429, 408, 409 and 5xx answers, failed connections;
Retry-After honoured, else backoff), but only while a retry can still start before the
deadline: past it, the last error is the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
FIRST_BACKOFF, MOST_BACKOFF = 0.5, 8.0  # seconds: the openai client's own
RETRIED_STATUSES = {408, 409, 429}


async def retried(call: Callable[[], Awaitable[T]], max_retries: int, deadline: float) -> T:
    """`call()` until it succeeds, fails for good, has been retried `max_retries` times, or the
    next try could not start before `deadline` (the loop's clock); every try ends by then."""
    loop = asyncio.get_running_loop()
    for attempt in range(max_retries + 1):
        try:
            async with asyncio.timeout_at(deadline):
                return await call()
        except Exception as exc:
            wait = _retry_wait(exc, attempt)
            if wait is None or attempt == max_retries or loop.time() + wait >= deadline:
                raise
        await asyncio.sleep(wait)
    raise AssertionError("unreachable: the last try returns or raises")


def _retry_wait(exc: Exception, attempt: int) -> float | None:
    """Seconds to wait before trying again after `exc`, or None when it is not worth a retry."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status not in RETRIED_STATUSES and status < 500:
            return None
        return _retry_after(exc.response) or _backoff(attempt)
    if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
        return _backoff(attempt)
    return None  # a timeout here is the deadline's: no time is left for another try


def _retry_after(response: Any) -> float | None:
    for header, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        try:
            seconds = float(response.headers.get(header, "")) / divisor
        except ValueError:
            continue
        if 0 < seconds <= 60:
            return seconds
    return None


def _backoff(attempt: int) -> float:
    return min(MOST_BACKOFF, FIRST_BACKOFF * 2 ** attempt)
