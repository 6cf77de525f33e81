"""One chat's reply latency while someone else spams /forget and /optout, against the same
chat's latency without them.

    python -m bench.forget_spam [--seconds 15] [--messages 20000]

A data folder is seeded with `--messages` stored messages from many people; the engine is the
default, `ngram`, which learns from the stored chat text; every /forget and /optout subtracts
the person's messages (a redundant one does nothing): that is the cost measured. Chat A: one
person sends a message, waits for the reply, pauses 0.2 s, and so on; the latency is from the
handle() call to the reply's finish. Three phases of `--seconds` each in one process, the same
data: without spam (baseline), with spam, without spam again. Spam: person B, no admin, in
another chat, sends /forget and /optout alternately as fast as the bot takes them: each one
the moment the last is answered (one chat's messages are answered in order, so a flood in one
chat amounts to this), under the default rate limit of 20 a minute. A is a bot admin only so
that its own pace is not rate limited. (Until issue 26, each command rebuilt the model's chat
part from the store; B, who has no messages, now costs nothing past the first command.)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bot.app import App
from bot.config import load_config
from bot.events import Incoming
from bot.frontends import FRONTENDS
from bot.i18n import t
from bot.router import Router
from bot.store import Store
from engines.registry import BUILTIN

PLATFORM = "bench"
PAUSE = 0.2  # seconds between a reply in chat A and A's next message
VOCABULARY = (
    "i you we they the a my your our this that it is was are were have has had do did can "
    "will would should could not very really just still also only never always sometimes "
    "today yesterday tomorrow morning evening night week weekend year time day home work "
    "school city house garden kitchen train bus car bike walk run read write cook eat drink "
    "coffee tea bread soup music film book game friend family mother father sister brother "
    "dog cat bird weather rain sun snow cold warm happy tired busy bored glad sorry think "
    "know feel want need like love hate remember forget try start stop finish wait call "
    "visit talk listen watch play learn teach help give take make buy sell pay travel sleep "
    "about with without after before because when where why how what who and but or so"
)
WORDS = VOCABULARY.split()


@dataclass
class Phase:
    latencies: list[float]
    candidates: list[int]


class TimedSink:
    """Records when the reply was finished."""

    def __init__(self) -> None:
        self.finished_at: float | None = None
        self.text = ""

    async def update(self, text: str) -> None:
        pass

    async def finish(self, text: str) -> list[str]:
        self.finished_at = time.perf_counter()
        self.text = text
        return []


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + "."


async def seed(db_file: Path, messages: int, rng: random.Random) -> None:
    """`messages` user messages by 500 people in 10 chats, in one transaction (add_message
    commits each one)."""
    store = await Store.open(db_file)
    try:
        chats = [await store.chat(PLATFORM, f"seed{i}") for i in range(10)]
        users = [await store.user(PLATFORM, f"person{i}", f"Person {i}") for i in range(500)]
        now = time.time()
        rows = [(rng.choice(chats).id, rng.choice(users).id, "user", sentence(rng), now)
                for _ in range(messages)]
        await store.db.execute("BEGIN IMMEDIATE")
        await store.db.executemany(
            "INSERT INTO messages (chat_id, user_id, role, text, created_at)"
            " VALUES (?, ?, ?, ?, ?)", rows)
        await store.db.execute("COMMIT")
    finally:
        await store.close()


async def chat_a(router: Router, seconds: float, rng: random.Random, tag: str) -> Phase:
    """Person A's conversation for `seconds`: every reply's latency, and how many candidate
    replies its search tried (the search stops at a deadline, so contention shows there)."""
    phase = Phase([], [])
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sink = TimedSink()
        incoming = Incoming(PLATFORM, "chat-a", "alice", sentence(rng), user_name="Alice",
                            message_id=f"{tag}{len(phase.latencies)}")
        start = time.perf_counter()
        await router.handle(incoming, sink)
        phase.latencies.append(sink.finished_at - start)
        reply = await router.store.last_reply(await router.store.chat(PLATFORM, "chat-a"))
        phase.candidates.append(reply.trace.get("candidates", 0))
        await asyncio.sleep(PAUSE)
    return phase


async def spam(router: Router, stop: asyncio.Event, answers: list[str]) -> None:
    """Person B's /forget, /optout, /forget, ... until `stop`; B's answers ("": refused)."""
    n = 0
    while not stop.is_set():
        sink = TimedSink()
        text = "/forget" if n % 2 == 0 else "/optout"
        await router.handle(Incoming(PLATFORM, "chat-b", "bob", text, user_name="Bob"), sink)
        answers.append(sink.text)
        n += 1
        await asyncio.sleep(0)


async def with_spam(router: Router, seconds: float, rng: random.Random) -> tuple[Phase, list]:
    stop = asyncio.Event()
    answers: list[str] = []
    spammer = asyncio.create_task(spam(router, stop, answers))
    phase = await chat_a(router, seconds, rng, "s")
    stop.set()
    await spammer  # the command under way ends before the next phase
    return phase, answers


def p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=20)[18]


def report(name: str, phase: Phase, base: Phase | None) -> None:
    latencies = phase.latencies
    p50 = statistics.median(latencies)
    ratios = (f"  {p50 / statistics.median(base.latencies):.2f}x"
              f" / {p95(latencies) / p95(base.latencies):.2f}x" if base else "")
    print(f"{name:<24} {len(latencies):>3} replies  p50 {p50 * 1e3:6.1f} ms"
          f"  p95 {p95(latencies) * 1e3:6.1f} ms  candidates p50"
          f" {statistics.median(phase.candidates):>6,.0f}{ratios}")


async def run(seconds: float, messages: int) -> None:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config_file = folder / "bench.toml"
        config_file.write_text(f'[bot]\ndefault_engine = "ngram"\nadmins = ["{PLATFORM}:alice"]\n'
                               "[policy]\nrate_per_minute = 20\n")
        config = load_config(config_file, FRONTENDS, BUILTIN, data_dir=str(folder / "data"))
        started = time.perf_counter()
        await seed(config.db_file, messages, rng)
        print(f"seeded {messages:,} messages in {time.perf_counter() - started:.1f} s")
        async with App(config, [], env={}).serving() as router:
            engine = await router.engines.get("ngram")
            started = time.perf_counter()
            await asyncio.to_thread(engine.languages["en"].estimate)
            print(f"one estimation of the shared n-gram model: "
                  f"{time.perf_counter() - started:.2f} s")
            await chat_a(router, 1, rng, "w")  # warm up
            before = await chat_a(router, seconds, rng, "b")
            spammed, answers = await with_spam(router, seconds, rng)
            after = await chat_a(router, seconds, rng, "a")
    slow_down = t(config.bot.language, "rate_limited", limit=config.policy.rate_per_minute)
    refused = sum(a in ("", slow_down) for a in answers)
    print(f"B sent {len(answers)} commands in {seconds:g} s: {len(answers) - refused} carried"
          f" out, {refused} refused by the rate limit")
    print(f"chat A, one message {PAUSE} s after each reply; latency ratios p50 / p95 against"
          " the baseline before")
    report("baseline (before)", before, None)
    report("/forget + /optout spam", spammed, before)
    report("baseline (after)", after, before)
    print(f"forget_spam p95: {p95(spammed.latencies) / p95(before.latencies):.2f}x")
    ratio = statistics.median(spammed.latencies) / statistics.median(before.latencies)
    print(f"forget_spam: {ratio:.2f}x (goal 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of each phase")
    parser.add_argument("--messages", type=int, default=20000, help="stored messages seeded")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.messages))


if __name__ == "__main__":
    main()
