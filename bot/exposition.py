"""/metrics' text, rendered in a worker thread and shared for a moment.

Rendering the registry takes about a millisecond of the event loop's time; a storm of scrapes
(1,000 of them) delayed chat replies by up to 1.5 s (issue 30). Here it is rendered off the
loop, at most once per `max_age` seconds, and scrapes that come meanwhile share it: one
rendering in flight at a time, however many scrapes wait for it.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.registry import CollectorRegistry

MAX_AGE = 1.0  # seconds a rendering is served again (scrapers ask every 15 s or so)


class Exposition:
    def __init__(self, registry: CollectorRegistry = REGISTRY, max_age: float = MAX_AGE) -> None:
        self.registry, self.max_age = registry, max_age
        self._rendering: asyncio.Task[bytes] | None = None
        self._rendered_at = float("-inf")
        self.renderings = 0

    async def latest(self) -> bytes:
        fresh = time.monotonic() - self._rendered_at < self.max_age
        if self._rendering is None or (self._rendering.done() and not fresh):
            self._rendering = asyncio.create_task(self._render())
        # shielded: a scraper that hangs up does not cancel the others' rendering
        return await asyncio.shield(self._rendering)

    async def _render(self) -> bytes:
        try:
            body = await asyncio.to_thread(generate_latest, self.registry)
        except BaseException:
            self._rendering = None  # the next scrape tries again
            raise
        self._rendered_at = time.monotonic()
        self.renderings += 1
        return body
