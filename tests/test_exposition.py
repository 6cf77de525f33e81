"""/metrics rendered off the event loop and shared by the scrapes that come together."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry, Counter

from bot.exposition import Exposition


async def test_a_storm_of_scrapes_renders_once_in_a_worker_thread():
    registry = CollectorRegistry()
    counter = Counter("storm", "scrapes", registry=registry)
    threads: set[int] = set()
    original = registry.collect

    def collect():  # generate_latest calls it: which thread renders?
        threads.add(threading.get_ident())
        return original()

    registry.collect = collect  # type: ignore[method-assign]
    exposition = Exposition(registry, max_age=60)
    bodies = await asyncio.gather(*(exposition.latest() for _ in range(200)))
    assert exposition.renderings == 1 and len(set(bodies)) == 1
    assert threads and threading.get_ident() not in threads
    counter.inc()
    assert await exposition.latest() == bodies[0]  # within max_age: the same text

    exposition.max_age = 0
    fresh = await exposition.latest()
    assert b"storm_total 1.0" in fresh and exposition.renderings == 2
