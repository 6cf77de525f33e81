"""Messages per second and latency through router + store, against plain aiosqlite inserts.

    python -m bench.router [--messages 2000] [--chats 50] [--profile FILE]

The engine answers at once with a constant, so what is measured is the bot's own path: chat
and user lookup, the message stored, history read, engine state read and written, the reply
stored with its platform id, the output policy, the per-chat lock. The baseline writes the same
rows (message, reply, platform id) with plain aiosqlite statements, one commit per row, on the
same kind of database file (WAL, synchronous=NORMAL) in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import ClassVar

import aiosqlite

from bot.app import App
from bot.config import load_config
from bot.events import Incoming
from bot.frontends import FRONTENDS
from engines.base import Conversation, Engine, EngineInfo
from engines.registry import BUILTIN

GOAL_RATIO = 0.5  # issue 15: at least half the rate of plain inserts, alone and 50 at once
GOAL_P99_MS = 5.0  # issue 15: one chat alone


class ConstantEngine(Engine):
    name: ClassVar[str] = "constant"

    def info(self) -> EngineInfo:
        return EngineInfo(ready=True, version="1")

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        conv.state["n"] = conv.state.get("n", 0) + 1
        yield "I hear you."


class NullSink:
    def __init__(self, reply_id: str) -> None:
        self.reply_id = reply_id

    async def update(self, text: str) -> None:
        pass

    async def finish(self, text: str) -> list[str]:
        return [self.reply_id]


async def timed(jobs: list[Callable[[], Awaitable[None]]], chats: int) -> tuple[float, list[float]]:
    """Run jobs spread over `chats` concurrent workers; total seconds and per-job latencies."""
    latencies: list[float] = []

    async def worker(mine: list[Callable[[], Awaitable[None]]]) -> None:
        for job in mine:
            start = time.perf_counter()
            await job()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker(jobs[i::chats]) for i in range(chats)))
    return time.perf_counter() - start, latencies


async def through_router(folder: Path, messages: int, chats: int) -> tuple[float, list[float]]:
    config_file = folder / "bench.toml"
    config_file.write_text(
        '[bot]\ndefault_engine = "constant"\n[policy]\nrate_per_minute = 0\n'
        '[plugins]\nengines = { constant = "bench.router:ConstantEngine" }\n'
    )
    config = load_config(config_file, FRONTENDS, BUILTIN, data_dir=str(folder / "router"))
    async with App(config, [], env={}).serving() as router:

        def job(i: int) -> Callable[[], Awaitable[None]]:
            incoming = Incoming("bench", f"chat{i % chats}", f"user{i % chats}",
                                f"message number {i}", message_id=f"m{i}")
            return lambda: router.handle(incoming, NullSink(f"r{i}"))

        return await timed([job(i) for i in range(messages)], chats)


async def plain_inserts(folder: Path, messages: int, chats: int) -> tuple[float, list[float]]:
    async with aiosqlite.connect(folder / "plain.sqlite3", isolation_level=None) as db:
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL"):
            await db.execute(f"PRAGMA {pragma}")
        await db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, chat TEXT, role TEXT,"
                         " text TEXT, created_at REAL)")
        await db.execute("CREATE TABLE refs (chat TEXT, platform_id TEXT, message_id INTEGER,"
                         " PRIMARY KEY (chat, platform_id))")

        def job(i: int) -> Callable[[], Awaitable[None]]:
            async def insert() -> None:
                chat = f"chat{i % chats}"
                for role, text in (("user", f"message number {i}"), ("bot", "I hear you.")):
                    cursor = await db.execute(
                        "INSERT INTO messages (chat, role, text, created_at) VALUES (?, ?, ?, ?)",
                        (chat, role, text, time.time()))
                await db.execute("INSERT INTO refs VALUES (?, ?, ?)",
                                 (chat, f"r{i}", cursor.lastrowid))
            return insert

        return await timed([job(i) for i in range(messages)], chats)


def report(name: str, seconds: float, latencies: list[float], baseline: float | None
           ) -> tuple[float, float]:
    """Print one row; returns (messages per second, p99 latency in seconds)."""
    rate = len(latencies) / seconds
    cuts = statistics.quantiles(latencies, n=100)
    ratio = f"{rate / baseline:.2f}x" if baseline else "1.00x"
    print(f"{name:<28} {rate:>9.0f} msg/s  {ratio:>6}  p50 {cuts[49] * 1e3:6.2f} ms"
          f"  p99 {cuts[98] * 1e3:6.2f} ms")
    return rate, cuts[98]


async def profiled(folder: Path, messages: int, chats: int, out: Path) -> None:
    """The router's run under cProfile; its top lines (by own time) go to `out`."""
    profile = cProfile.Profile()
    profile.enable()
    await through_router(folder, messages, chats)
    profile.disable()
    with out.open("w") as file:
        pstats.Stats(profile, stream=file).sort_stats("tottime").print_stats(30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--profile", type=Path, help="write the router run's cProfile here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.profile:
            await profiled(folder, args.messages, args.chats, args.profile)
            return
        plain = await plain_inserts(folder, args.messages, args.chats)
        routed = await through_router(folder, args.messages, args.chats)
    print(f"{args.messages} messages over {args.chats} concurrent chats")
    base, _ = report("plain aiosqlite inserts", *plain, None)
    rate, p99 = report("router + store", *routed, base)
    if args.chats == 1:  # alone, a message's latency has a goal too
        print(f"router p99: {p99 * 1e3:.2f} ms (goal < {GOAL_P99_MS} ms)")
    print(f"router: {rate / base:.2f}x (goal {GOAL_RATIO}x)")


if __name__ == "__main__":
    asyncio.run(main())
