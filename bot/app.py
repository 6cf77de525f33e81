"""Wiring and lifecycle: Store -> Engines -> Router -> Frontends, all on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar, cast

from bot import learning
from bot.adapters import Adapters
from bot.config import TOKEN_ENV, Config, ConfigError
from bot.frontends import FRONTENDS, Frontend
from bot.guard import Guard
from bot.health import Watched, WriteWatch
from bot.jobs import JobRunner
from bot.notices import AdminNotices
from bot.router import Router
from bot.server import Server
from bot.services import Services
from bot.store import Store
from engines.base import EngineSetup, Written
from engines.registry import BUILTIN, Engines, load_class

log = logging.getLogger(__name__)
T = TypeVar("T")
# How long a thread keeps the GIL when another asks for it (Python's default: 5 ms). The
# transformer's worker gives it up and takes it back around every torch op (hundreds a forward
# pass), the event loop around every wait; a pure-Python thread beside them (the n-gram's
# search and estimation, 0.2-0.3 s of CPU each) keeps it for the interval at each of those
# turns (the "convoy effect", CPython bpo-7946). `python -m bench.gil_turns`: a SmolLM2 decode
# pass of 85 ms took 11 s beside a Python thread at 5 ms, 370 ms at 0.1 ms (bench/RESULTS.md).
GIL_TURN = 0.0001


PLATFORMS = "platforms"  # the word a container names: every platform with a token, no console


def choose_frontends(named: list[str], env: dict[str, str], stdin_is_tty: bool) -> list[str]:
    """The frontends to start: those named, else every platform with a token in `env`, plus
    the console when nothing else is configured or stdin is a terminal. The name "platforms"
    stands for every platform with a token and never the console (a container's entry point:
    with no token it must stop with one line, not read an empty stdin and exit 0)."""
    with_token = [name for name in FRONTENDS if TOKEN_ENV.get(name, "") in env]
    if named:
        unknown = [n for n in named if n not in FRONTENDS and n != PLATFORMS]
        if unknown:
            known = ", ".join([*FRONTENDS, PLATFORMS])
            raise ConfigError(f"unknown frontend {unknown[0]!r} (known: {known})")
        if PLATFORMS in named and not with_token:
            tokens = " or ".join(TOKEN_ENV[n] for n in FRONTENDS if n in TOKEN_ENV)
            raise ConfigError(f"no platform to start: set {tokens} in the environment")
        chosen = [x for n in named for x in (with_token if n == PLATFORMS else [n])]
        return list(dict.fromkeys(chosen))
    chosen = list(with_token)
    if not chosen or stdin_is_tty:
        chosen.insert(0, "console")
    return chosen


class App:
    """Build everything that can be checked without I/O in __init__ (config errors surface
    before anything starts), then `run` until a signal or a frontend ends."""

    def __init__(self, config: Config, frontends: list[str], env: dict[str, str] | None = None):
        self.config = config
        self.env = os.environ if env is None else env
        self.store: Store | None = None
        self.adapters: Adapters | None = None  # the one owner of which adapter serves
        self.jobs: JobRunner | None = None
        self.guard: Guard | None = None
        self.server: Server | None = None  # [server] listen: /healthz, /readyz and /metrics
        self.writes: WriteWatch | None = None  # whether the store can write, for /healthz
        self.started: list[Frontend] = []  # the frontends started so far, for /healthz
        self.notices = AdminNotices()  # what the bot's admins are told when they next write
        self.engines = Engines.from_specs(
            BUILTIN | config.plugins.engines,
            EngineSetup(config.data_dir, config.bot.language, self._stored_texts,
                          config.adapters_dir, self._active_adapter, self._adapter_broken,
                          k_people=config.privacy.k_people),
            lambda name, cls: config.options(f"engines.{name}", cls),
        )
        for table in config.components:  # check the tables of frontends not started, too
            if table in FRONTENDS and table not in frontends:
                config.options(table, _frontend_class(table).Options)
        self.frontends = [self._frontend(name) for name in frontends]
        self.stopping = asyncio.Event()

    def _frontend(self, name: str) -> Frontend:
        cls, variable = _frontend_class(name), TOKEN_ENV.get(name, "")
        token = self.env.get(variable, "") if variable else ""
        if variable and not token:
            raise ConfigError(f"{name}: set {variable} in the environment")
        return cls(self.config.options(name, cls.Options), self.config, token)

    def _store(self) -> Store:
        return _started(self.store, "the store")

    async def _stored_texts(self) -> list[Written]:
        return learning.written(await self.store.stored_texts()) if self.store else []

    async def _active_adapter(self) -> str:
        return await self.adapters.active() if self.adapters else ""

    async def _adapter_broken(self, adapter_id: str, why: str) -> None:
        """An engine could not load an adapter: the store marks it (/adapters shows it; the
        guard and jobs skip it) and the admins hear of it when they next write."""
        if self.adapters is not None:
            await self.adapters.mark_broken(adapter_id, why)
        self.notices.add(f"adapter:{adapter_id}", "adapter_broken_notice", adapter=adapter_id,
                         reason=why)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Router]:
        """The store open and the router ready; on exit, replies in flight are drained
        (finished or abandoned), engines closed and the database closed."""
        self.store = await Store.open(self.config.db_file)
        stale = await self.store.fail_unfinished_jobs("the bot stopped while the job ran")
        if stale:
            log.warning("marked %d fine-tuning job(s) of an earlier run as failed", len(stale))
        self.adapters = Adapters(self.store, self.config.adapters_dir, self.engines)
        await self.adapters.begin()
        services = Services(self.config, self.store, self.engines, self.adapters,
                            notices=self.notices)
        services.jobs = self.jobs = JobRunner(services, interrupted=stale)
        services.guard = self.guard = Guard(services)
        router = Router(services)
        probing: asyncio.Task | None = None  # the store's write probe, for /healthz
        with _short_gil_turns():  # while the engines' threads run beside the event loop
            try:
                self.engines.begin_start(self.config.bot.default_engine)
                probing = await self._start_server(router)
                yield router
            finally:
                await router.drain(self.config.bot.drain_seconds)
                if probing is not None:
                    probing.cancel()
                    await asyncio.gather(probing, return_exceptions=True)
                if self.server is not None:
                    await self.server.stop()
                await self.engines.close()
                await self.store.close()

    async def _start_server(self, router: Router) -> asyncio.Task | None:
        """The HTTP listener, and the store's write probe it reports on (a task to cancel)."""
        if not self.config.server.listen:
            return None
        store = self._store()
        self.writes = WriteWatch(store.probe_write, store.cannot_write_since)
        watched = Watched(router, self.frontends, self.started, self.writes)
        self.server = Server(*self.config.server.address, watched)
        await self.server.start()
        return asyncio.create_task(_supervised(self.writes.run, pause=1.0))

    async def run(self) -> int:
        async with self.serving() as router:
            started = self.started
            try:
                for frontend in self.frontends:
                    await frontend.start(router)
                    started.append(frontend)
                log.info("%s", self.started_line())
                await self._until_stopped()
            finally:
                await self._stop_intake(started)  # nothing confirmed that will not be stored
                if self.stopping.is_set():  # a signal: said before the drain, which takes
                    # nothing new from its first step on (restart tests wait for this line)
                    log.info("stopping: taking nothing new; %s s for the replies in flight",
                             self.config.bot.drain_seconds)
                await router.drain(self.config.bot.drain_seconds)  # frontends still deliver
                await self._stop_frontends(started)
        return 0

    def started_line(self) -> str:
        """What runs, in one line: frontends, engines (the default first), data, listener."""
        default = self.config.bot.default_engine
        engines = [f"{default} (default)"] + [n for n in self.engines.names if n != default]
        listener = (f"/healthz, /readyz and /metrics on {self.server.host}:"
                    f"{self.server.bound_port}" if self.server else "no HTTP listener")
        frontends = ", ".join(f.platform for f in self.started) or "none"
        return (f"eliza2llm started: frontends {frontends}; engines {', '.join(engines)}; "
                f"data {self.config.data_dir}; {listener}")

    async def _until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stopping.set)
        # The bot ends on a signal or when a frontend ends by itself (the console at end of
        # input); the background chores never end it, not even by failing.
        enders: list[asyncio.Task] = [asyncio.create_task(self.stopping.wait())]
        enders += [asyncio.create_task(f.wait()) for f in self.frontends]
        chores = [asyncio.create_task(_supervised(chore)) for chore in
                  (self._housekeeping, _started(self.jobs, "the job runner").schedule,
                   _started(self.guard, "the guard").watch)]
        try:
            await asyncio.wait(enders, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in enders + chores:
                task.cancel()
            await asyncio.gather(*enders, *chores, return_exceptions=True)

    async def _housekeeping(self) -> None:
        """At start and every hour: messages past [privacy] retention_days go, and so do the
        inbox's records of deliveries handled more than a day ago (a redelivery comes within
        minutes, if at all)."""
        days, store = self.config.privacy.retention_days, self._store()
        while True:
            if days > 0:
                # out of the engines' every scope, too
                removed = await learning.expire(store, self.engines, time.time() - days * 86400)
                if removed:
                    log.info("retention: deleted %d messages older than %d days", removed, days)
            await store.forget_handled(time.time() - 86400)
            await asyncio.sleep(3600)

    async def _stop_intake(self, started: list[Frontend]) -> None:
        for frontend in started:
            await frontend.stop_intake()

    async def _stop_frontends(self, started: list[Frontend]) -> None:
        for frontend in reversed(started):
            try:
                await frontend.stop()
            except Exception:
                log.warning("frontend %s did not stop cleanly", frontend.platform, exc_info=True)


@contextlib.contextmanager
def _short_gil_turns() -> Iterator[None]:
    """GIL_TURN while the bot serves; the interpreter's own setting after."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(GIL_TURN)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _frontend_class(name: str) -> type[Frontend]:
    return cast("type[Frontend]", load_class(FRONTENDS[name]))


async def _supervised(chore: Callable[[], Awaitable[None]], pause: float = 60.0) -> None:
    """Run a background chore for as long as the bot runs: a failure is logged, and the chore
    starts again after a pause (a database locked by a fine-tuning job, say)."""
    while True:
        try:
            await chore()
        except Exception:
            log.exception("%s failed; trying again in %.0f s", chore.__qualname__, pause)
        await asyncio.sleep(pause)


def _started(part: T | None, what: str) -> T:
    """A part the app creates in App.serving(), asked for after it did."""
    if part is None:
        raise RuntimeError(f"{what} starts in App.serving()")
    return part
