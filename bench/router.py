"""Messages per second and latency through router + store, against plain aiosqlite inserts.

    python -m bench.router [--messages 2000] [--chats 50]

The engine answers at once with a constant, so what is measured is the bot's own path: chat
and user lookup, the message stored, history read, engine state read and written, the reply
stored with its platform id, the output policy, the per-chat lock. The baseline writes the same
rows (message, reply, platform id) with plain aiosqlite statements, one commit per row, on the
same kind of database file (WAL, synchronous=NORMAL) in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
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


def report(name: str, seconds: float, latencies: list[float], baseline: float | None) -> float:
    rate = len(latencies) / seconds
    cuts = statistics.quantiles(latencies, n=100)
    ratio = f"{rate / baseline:.2f}x" if baseline else "1.00x"
    print(f"{name:<28} {rate:>9.0f} msg/s  {ratio:>6}  p50 {cuts[49] * 1e3:6.2f} ms"
          f"  p99 {cuts[98] * 1e3:6.2f} ms")
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = await plain_inserts(folder, args.messages, args.chats)
        routed = await through_router(folder, args.messages, args.chats)
    print(f"{args.messages} messages over {args.chats} concurrent chats")
    base = report("plain aiosqlite inserts", *plain, None)
    report("router + store", *routed, base)


if __name__ == "__main__":
    asyncio.run(main())
