"""What /healthz and /readyz report. Liveness (/healthz): the bot runs, takes messages, its
frontends have started and its database answers and can write; a restart would help when it
fails. Readiness (/readyz): the default engine can answer now, and every engine's state and why
not, which a restart would not fix (a remote server restarting, a model still loading).

Whether the store can write is watched by a small write every few seconds (WriteWatch): a full
disk or a lock held by another process shows on /healthz once it has lasted `grace` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.router import Router

log = logging.getLogger(__name__)

PROBE_EVERY = 5.0  # seconds between write probes
WRITE_GRACE = 10.0  # a store that cannot write this long is unhealthy ("a few seconds")
READ_WAIT = 3.0  # seconds a health check waits for the database to answer a query
ASK_WAIT = 1.0  # seconds /readyz waits for a remote engine's first health check


class WriteWatch:
    """Whether the store has written lately. The store owns the record of its failing writes
    (`failing_since`: Store.cannot_write_since, whose failures it logs once a minute); the
    watch writes every `every` seconds so that an idle bot's store is tried too, and sees a
    write that hangs on a lock. `problem()` is "" while writes work, or one line once they
    have failed (or hung) for `grace` seconds."""

    def __init__(self, write: Callable[[], Awaitable[object]],
                 failing_since: Callable[[], float | None], every: float = PROBE_EVERY,
                 grace: float = WRITE_GRACE, clock: Callable[[], float] = time.time):
        self.write, self.failing_since = write, failing_since
        self.every, self.grace, self.clock = every, grace, clock
        self.error = ""
        self._probing_since: float | None = None  # a write in progress (waiting for a lock)

    async def run(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.every)

    async def probe(self) -> None:
        self._probing_since = self.clock()
        try:
            await self.write()
        except Exception as exc:  # the store logged it (once a minute): kept for /healthz
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            self.error = ""
        finally:
            self._probing_since = None

    def problem(self) -> str:
        failing = self.failing_since()
        since = failing if failing is not None else self._probing_since
        if since is None or self.clock() - since < self.grace:
            return ""
        why = (self.error or "a write failed") if failing is not None else (
            "a write has been waiting (the database is locked?)")
        return f"cannot write for {self.clock() - since:.0f} s: {why}"


@dataclass
class Watched:
    """What /healthz and /readyz look at. `started` is the app's list of frontends started so
    far; `writes` watches the store's writes (None: not watched)."""

    router: Router
    frontends: Sequence[Any]
    started: Sequence[Any]
    writes: WriteWatch | None = field(default=None)


async def liveness(watched: Watched) -> tuple[bool, dict[str, Any]]:
    """(alive, the checks as a small JSON-able dict). Starting or stopping is not alive: a load
    balancer should send nothing then. Engines do not count: ELIZA answers while a remote
    server restarts."""
    services = watched.router.services
    checks: dict[str, Any] = {
        "accepting": watched.router.accepting,
        "frontends": f"{len(watched.started)}/{len(watched.frontends)} started",
    }
    writing = watched.writes.problem() if watched.writes is not None else ""
    checks["store"] = writing or await _reads(services.store)
    alive = (watched.router.accepting and checks["store"] == "ok"
             and len(watched.started) == len(watched.frontends))
    return alive, {"status": "ok" if alive else "unavailable", **checks}


async def _reads(store: Any) -> str:
    """"ok" when a query answers within READ_WAIT seconds (it queues behind a write that waits
    for a lock: then the write probe says more)."""
    try:
        await asyncio.wait_for(store.schema_version(), READ_WAIT)
        return "ok"
    except TimeoutError:
        return f"no answer within {READ_WAIT:.0f} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


async def readiness(watched: Watched) -> tuple[bool, dict[str, Any]]:
    """(ready, body): alive and the default engine ready; the body names every engine's state
    and, where it is not ready, why."""
    engines = watched.router.services.engines
    await engines.start_when_asked(wait=ASK_WAIT)
    default = watched.router.services.config.bot.default_engine
    states: dict[str, Any] = {}
    for name in engines.names:
        state, version, detail = engines.status(name)
        states[name] = {"state": state, **({"version": version} if version else {}),
                        **({"detail": detail} if detail else {})}
    alive, checks = await liveness(watched)
    ready = alive and states.get(default, {}).get("state") == "ready"
    why = "" if ready else (f"{checks['status']}" if not alive else
                            f"the default engine {default} is {states[default]['state']}")
    return ready, {"status": "ready" if ready else "not ready", **({"why": why} if why else {}),
                   "default_engine": default, "engines": states}
