"""What the bot adds on top of an OpenAI-compatible server, against a bare `openai` client
making the same requests to the same fake vLLM server (tests/fake_openai.py, in a process of
its own so its work is not counted as ours).

    python -m bench.remote [--requests 200] [--chats 64] [--words 40] [--delay 0.01]
                           [--gc-freeze]

1. First-token latency, one request at a time: from the call (router.handle with a message /
   client.chat.completions.create) to the first word (the sink's first update / the first
   content chunk). The difference at the median is what the bot adds (goal: <= 2 ms).
2. `--chats` chats streaming at once (`--words` words each, `--delay` s between words): the
   longest stall of the event loop, measured by a 1 ms ticker (goal: never > 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.app import App
from bot.config import load_config
from bot.events import Incoming
from bot.frontends import FRONTENDS
from engines.registry import BUILTIN

TICK = 0.001
FREEZE_GC = False  # --gc-freeze


def serve_fake(urls: Any, delay: float) -> None:
    """The fake server's own process: report its URL, then serve until killed."""
    from tests.fake_openai import FakeOpenAI

    async def run() -> None:
        fake = await FakeOpenAI(delay=delay).start()
        urls.put(fake.url)
        await asyncio.Event().wait()

    asyncio.run(run())


class FirstWordSink:
    def __init__(self) -> None:
        self.first: float | None = None
        self.final = ""

    async def update(self, text: str) -> None:
        self.first = self.first or time.perf_counter()

    async def finish(self, text: str) -> list[str]:
        self.final = text
        return ["sent"]


class StallMeter:
    """How long the event loop was kept from other work, per step (a task step, a socket
    read), timed by wrapping asyncio's Handle._run as asyncio's debug mode does: the longest
    step in wall time, and in the loop thread's own CPU time (on a shared machine a step's wall
    time also counts the time the OS gave other processes), and the steps over 10 ms of CPU.
    A 1 ms ticker's worst lateness is kept too: it also counts every other ready step's turn."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_cpu = 0.0
        self.over_10ms = 0
        self.ticker_worst = 0.0
        self.worst_gc = 0.0  # the longest garbage collection (in some step, not of our making)
        self._gc_start = 0.0
        self._task: asyncio.Task | None = None
        self._run = asyncio.events.Handle._run

    def _gc(self, phase: str, _: dict) -> None:
        if phase == "start":
            self._gc_start = time.thread_time()
        else:
            self.worst_gc = max(self.worst_gc, time.thread_time() - self._gc_start)

    def _timed(self, handle: asyncio.Handle) -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        self._run(handle)
        cpu = time.thread_time() - cpu
        self.worst = max(self.worst, time.perf_counter() - start)
        self.worst_cpu = max(self.worst_cpu, cpu)
        self.over_10ms += cpu > 0.010

    async def _tick(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            self.ticker_worst = max(self.ticker_worst, time.perf_counter() - start - TICK)

    async def __aenter__(self) -> StallMeter:
        meter = self
        asyncio.events.Handle._run = lambda handle: meter._timed(handle)
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_: Any) -> None:
        asyncio.events.Handle._run = self._run
        gc.callbacks.remove(self._gc)
        self._task.cancel()


def text_of(words: int, i: int) -> str:
    return " ".join(f"w{i}x{n}" for n in range(words))


def bare_client(url: str) -> tuple[Any, Callable[[int, int], Awaitable[float]]]:
    """The baseline: the openai client and the request the engine sends, nothing else."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0)

    async def ask(i: int, words: int) -> float:
        start = time.perf_counter()
        first = None
        stream = await client.chat.completions.create(
            model="tiny-base", messages=[{"role": "user", "content": text_of(words, i)}],
            stream=True, stream_options={"include_usage": True}, max_tokens=128,
            temperature=0.7, top_p=0.9, extra_body={"top_k": 50, "repetition_penalty": 1.1})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and first is None:
                first = time.perf_counter()
        return first - start

    return client, ask


def bot_app(url: str, folder: Path) -> App:
    config_file = folder / "bench.toml"
    config_file.write_text(f'[bot]\ndefault_engine = "remote"\n[policy]\nrate_per_minute = 0\n'
                           f'[engines.remote]\nbase_url = "{url}"\nmax_retries = 0\n')
    config = load_config(config_file, FRONTENDS, BUILTIN, data_dir=str(folder / "data"))
    return App(config, [], env={})


def through_bot(router: Any) -> Callable[[int, int], Awaitable[float]]:
    async def ask(i: int, words: int) -> float:
        sink = FirstWordSink()
        start = time.perf_counter()
        await router.handle(Incoming("console", f"chat{i}", "me", text_of(words, i)), sink)
        assert sink.final.startswith("[tiny-base]"), sink.final
        return sink.first - start

    return ask


async def first_word_latencies(asks: list[Callable[[int, int], Awaitable[float]]],
                               requests: int) -> list[list[float]]:
    """Each side's first-word latencies, the sides taking turns request by request (so drift
    on a shared machine falls on both alike)."""
    for i in range(5):  # warm up: connections, the engine's start
        for ask in asks:
            await ask(10_000 + i, 3)
    if FREEZE_GC:  # what a long-running server does after start: old objects leave the GC's scans
        gc.freeze()
    latencies: list[list[float]] = [[] for _ in asks]
    for i in range(requests):
        for ask, mine in zip(asks, latencies, strict=True):
            mine.append(await ask(i % 64, 3))
    return latencies


async def concurrent_stall(ask: Callable[[int, int], Awaitable[float]], chats: int,
                           words: int) -> tuple[float, StallMeter]:
    """(seconds for all chats, the stalls measured) with `chats` replies streaming at once."""
    async with StallMeter() as meter:
        start = time.perf_counter()
        await asyncio.gather(*(ask(20_000 + i, words) for i in range(chats)))
        return time.perf_counter() - start, meter


async def measure(url: str, args: argparse.Namespace) -> None:
    client, bare = bare_client(url)
    with tempfile.TemporaryDirectory() as tmp:
        async with bot_app(url, Path(tmp)).serving() as router:
            ask = through_bot(router)
            bare_first, bot_first = await first_word_latencies([bare, ask], args.requests)
            bare_all, bare_meter = await concurrent_stall(bare, args.chats, args.words)
            bot_all, bot_meter = await concurrent_stall(ask, args.chats, args.words)
    await client.close()
    report(args, (bare_first, bare_all, bare_meter), (bot_first, bot_all, bot_meter))


def report(args: argparse.Namespace, bare: tuple, bot: tuple) -> None:
    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1e3

    print(f"first word, {args.requests} requests one at a time, the two sides taking turns"
          " (ms): p50 / p90")
    print(f"  bare openai client   {p(bare[0], 50):7.2f} / {p(bare[0], 90):7.2f}")
    print(f"  through the bot      {p(bot[0], 50):7.2f} / {p(bot[0], 90):7.2f}"
          f"   ratio {p(bot[0], 50) / p(bare[0], 50):.2f}x")
    print(f"  added by the bot     {p(bot[0], 50) - p(bare[0], 50):7.2f} ms at the median"
          " (goal <= 2 ms)")
    print(f"{args.chats} chats streaming {args.words} words at once ({args.delay * 1e3:.0f} ms"
          " apart): all done in / longest loop step, wall and CPU / steps over 10 ms CPU /"
          " a 1 ms ticker's worst lateness / longest garbage collection")
    for name, (seconds, meter) in (("bare openai client", bare[1:]), ("through the bot", bot[1:])):
        print(f"  {name:<20} {seconds:7.2f} s / {meter.worst * 1e3:6.2f} ms,"
              f" {meter.worst_cpu * 1e3:6.2f} ms / {meter.over_10ms}"
              f" / {meter.ticker_worst * 1e3:6.1f} ms / {meter.worst_gc * 1e3:5.1f} ms")
    print(f"  ratio (time for all) {bot[1] / bare[1]:.2f}x (goal: no step > 10 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--chats", type=int, default=64)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() after the warm-up, on both sides")
    args = parser.parse_args()
    global FREEZE_GC
    FREEZE_GC = args.gc_freeze
    context = multiprocessing.get_context("spawn")
    urls = context.Queue()
    server = context.Process(target=serve_fake, args=(urls, args.delay), daemon=True)
    server.start()
    try:
        asyncio.run(measure(urls.get(timeout=60), args))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
