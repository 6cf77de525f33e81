"""Twenty ordinary chats with and without one person who pushes every limit, per engine; and
the bot's memory after 2,000 messages of 4 KB.

    python -m bench.neighbour [--engines eliza,ngram,transformer,remote] [--seconds 20]
                              [--chats 20] [--every 4] [--memory-messages 2000] [--model DIR]
                              [--without-learning] [--rounds 3]

Each ordinary person has a chat of their own and sends a message every `--every` seconds
(with jitter), under the default limits; a reply's latency runs from handle() to its finish.
The abuser, no admin, under the same default limits, works two chats at once (a private one
and a group), each the moment the last answer came (a script, 0.1 s apart), cycling through
the heaviest inputs the limits allow: a 4 KB message, the longest /probe
(max_probe_alternatives continuations after a context filling max_input_chars), /compare of a
4 KB text, and a storm of 30 reactions on their last reply. Three phases (alone, with the
abuser, alone again) run in one process on one bot per engine, after a warm-up that loads
every engine (/compare asks them all), so the ratio compares like with like: ordinary chats'
p99 with the abuser over their p99 alone (goal: <= 1.5x); alone again over alone is the noise.
The three phases run `--rounds` times on the same bot, and each kind's latencies are pooled:
one round's p99 of ~100 replies is its second-slowest reply, which the n-gram model's
re-estimation (every 2 s while people write) moved by 0.5-2.5x between two quiet runs; the
abuser spends its budget in its first second, then what refills.

The transformer is the tiny model (built in a temp folder unless --model), on the CPU with one
thread and 32 new tokens a reply (MAX_NEW_TOKENS); the remote engine talks to
tests/fake_openai.py in a process of its own (20 ms a word). The n-gram model is loaded in
every run and learns every message, the abuser's 4 KB ones included.
Memory: a fresh bot with every engine loaded, then one person (a bot admin, so no limit slows
the run) sends `--memory-messages` messages of 4 KB of words never seen (random letters: the
heaviest for the n-gram model, which learns them) in one ELIZA chat; the process's resident
memory before and after (after a pause for the n-gram model's coalesced re-estimation). The
bound on the n-gram model's learned counts belongs to issue 26 item 3 (the "ngram" branch):
this measures the engine as it is on the branch where it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot import events
from bot.app import App
from bot.config import load_config
from bot.events import Incoming, Reaction
from bot.frontends import FRONTENDS
from bot.router import Router
from engines.registry import BUILTIN

GOAL = 1.5
PLATFORM = "bench"
ADMIN = "admin"
KB4 = 4096
ABUSER_PAUSE = 0.1  # seconds between one abuser answer and the next request
STORM = 30  # reactions per storm
# The tiny transformer's replies: 20 chats at one message every 4 s is 5 replies a second,
# which one torch thread on a shared 2-core machine sustains at 32 tokens, not at 128; an
# overloaded baseline would measure queueing, not the abuser.
MAX_NEW_TOKENS = 32
VOCABULARY = ("the a my your this that is was have do can will not very just still also today "
              "home work school city house train music film book friend family dog cat weather "
              "rain sun happy tired think know feel want need like love remember forget learn "
              "about with after before because when where why how what who and but so")
WORDS = VOCABULARY.split()


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    abuser: dict[str, int] = field(default_factory=dict)  # outcome -> count


class Sink(events.Sink):
    """A platform that shows nothing: the final text and when it came. /compare sends one
    message per engine (another()), as on Discord and Telegram: without them, /compare failed
    before any engine ran, and the abuser's heaviest input cost nothing."""

    def __init__(self, reply_id: str) -> None:
        self.reply_id = reply_id
        self.text = ""
        self.finished_at = 0.0
        self.more = 0

    def another(self) -> Sink:
        self.more += 1
        return Sink(f"{self.reply_id}.{self.more}")

    async def update(self, text: str) -> None:
        pass

    async def finish(self, text: str) -> list[str]:
        self.text, self.finished_at = text, time.perf_counter()
        return [self.reply_id]


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def text_of(rng: random.Random, chars: int) -> str:
    text = ""
    while len(text) < chars:
        text += sentence(rng, 12) + ". "
    return text[:chars].rstrip()


def unheard(rng: random.Random, chars: int) -> str:
    """Words of random letters: each one, and every n-gram of them, new to the model."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    text = ""
    while len(text) < chars:
        text += "".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) + " "
    return text[:chars].rstrip()


def config_file(folder: Path, engine: str, model: str, remote_url: str) -> Path:
    path = folder / f"{engine}.toml"
    path.write_text(
        f'[bot]\ndefault_engine = "{engine}"\nadmins = ["{PLATFORM}:{ADMIN}"]\n'
        f'[engines.transformer]\nmodel = "{model}"\ndevice = "cpu"\nthreads = 1\n'
        f'max_new_tokens = {MAX_NEW_TOKENS}\n'
        f'[engines.remote]\nbase_url = "{remote_url}"\ntimeout = 30.0\n', encoding="utf-8")
    return path


async def ordinary(router: Router, chat: int, seconds: float, every: float,
                   rng: random.Random, phase: Phase) -> None:
    deadline = time.perf_counter() + seconds
    await asyncio.sleep(rng.uniform(0, every))  # the chats do not all start at once
    n = 0
    while time.perf_counter() < deadline:
        sink = Sink(f"o{chat}-{n}")
        incoming = Incoming(PLATFORM, f"chat{chat}", f"person{chat}", sentence(rng, 8) + "?",
                            message_id=f"{chat}-{n}")
        start = time.perf_counter()
        await router.handle(incoming, sink)
        phase.latencies.append(sink.finished_at - start)
        n += 1
        await asyncio.sleep(every * rng.uniform(0.8, 1.2))


def heaviest(router: Router, rng: random.Random) -> list[str]:
    """The abuser's cycle of requests, each as heavy as the limits allow."""
    policy = router.config.policy
    alternatives = [f"w{i}" for i in range(policy.max_probe_alternatives)]
    tail = " | " + " | ".join(alternatives)
    context = text_of(rng, policy.max_input_chars - len("/probe ") - len(tail))
    return [text_of(rng, KB4), f"/probe {context}{tail}",
            "/compare " + text_of(rng, KB4 - len("/compare "))]


async def abuser(router: Router, chat: str, group: bool, stop: asyncio.Event,
                 rng: random.Random, phase: Phase) -> None:
    cycle, n, last_reply = heaviest(router, rng), 0, ""
    while not stop.is_set():
        text = cycle[n % len(cycle)]
        sink = Sink(f"{chat}-{n}")
        incoming = Incoming(PLATFORM, chat, "abuser", text, is_group=group,
                            message_id=f"{chat}-{n}")
        await router.handle(incoming, sink)
        refused = sink.text.startswith(("Slow down", "You have used", "That would cost",
                                        "That is too long", "/probe compares"))
        kind = text.split()[0] if text.startswith("/") else "4 KB message"
        key = f"{kind} {'refused' if refused or not sink.text else 'answered'}"
        phase.abuser[key] = phase.abuser.get(key, 0) + 1
        if not text.startswith("/") and sink.text and not refused:
            last_reply = sink.reply_id
        if n % len(cycle) == len(cycle) - 1 and last_reply:
            votes = [await router.react(Reaction(PLATFORM, chat, "abuser", last_reply,
                                                 "👍" if i % 2 else "👎", is_group=group))
                     for i in range(STORM)]
            phase.abuser["votes counted"] = phase.abuser.get("votes counted", 0) + sum(votes)
            phase.abuser["votes dropped"] = phase.abuser.get("votes dropped", 0) + \
                votes.count(False)
        n += 1
        await asyncio.sleep(ABUSER_PAUSE)


async def run_phase(router: Router, args, rng: random.Random, abusing: bool) -> Phase:
    phase, stop = Phase(), asyncio.Event()
    abusers = [asyncio.create_task(abuser(router, chat, group, stop, rng, phase))
               for chat, group in (("abuse-dm", False), ("abuse-group", True))] \
        if abusing else []
    await asyncio.gather(*(ordinary(router, i, args.seconds, args.every, rng, phase)
                           for i in range(args.chats)))
    stop.set()
    await asyncio.gather(*abusers)
    return phase


async def warm_up(router: Router) -> None:
    """Load every engine (/compare asks them all) and answer each kind of request once."""
    admin = Incoming(PLATFORM, "warm", ADMIN, "/compare hello there")
    await router.handle(admin, Sink("warm"))
    await router.handle(Incoming(PLATFORM, "warm", ADMIN, "/probe the cat | sat | ran"),
                        Sink("warm2"))


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]


async def one_engine(engine: str, folder: Path, model: str, url: str, args) -> float:
    config = load_config(config_file(folder, engine, model, url), FRONTENDS, BUILTIN,
                         data_dir=str(folder / engine))
    rng = random.Random(0)
    async with App(config, [], env={}).serving() as router:
        await warm_up(router)
        alone, pushed, again = Phase(), Phase(), Phase()
        for _ in range(args.rounds):
            for pooled, abusing in ((alone, False), (pushed, True), (again, False)):
                one = await run_phase(router, args, rng, abusing)
                pooled.latencies += one.latencies
                for key, count in one.abuser.items():
                    pooled.abuser[key] = pooled.abuser.get(key, 0) + count
    ratio = p99(pushed.latencies) / p99(alone.latencies)
    for name, phase in (("alone", alone), ("with the abuser", pushed), ("alone again", again)):
        ms = sorted(x * 1000 for x in phase.latencies)
        print(f"  {engine:11s} {name:16s} replies {len(ms):4d}  p50 {statistics.median(ms):7.1f}"
              f" ms  p99 {p99(ms):7.1f} ms")
    print(f"  {engine:11s} abuser: " + ", ".join(f"{k} {v}" for k, v in
                                                 sorted(pushed.abuser.items())))
    verdict = "ok" if ratio <= GOAL else "OVER THE GOAL"
    noise = p99(again.latencies) / p99(alone.latencies)
    print(f"neighbour {engine}: p99 {ratio:.2f}x with the abuser ({verdict}, goal <= {GOAL}x);"
          f" alone again {noise:.2f}x (the noise)")
    return ratio


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def memory(folder: Path, model: str, url: str, messages: int) -> None:
    config = load_config(config_file(folder, "eliza", model, url), FRONTENDS, BUILTIN,
                         data_dir=str(folder / "memory"))
    rng = random.Random(1)
    async with App(config, [], env={}).serving() as router:
        await warm_up(router)
        await asyncio.sleep(3)
        gc.collect()
        before, started = rss_mb(), time.perf_counter()
        for i in range(messages):
            text = unheard(rng, KB4)  # the worst case: every word new to the n-gram model
            await router.handle(Incoming(PLATFORM, "memory", ADMIN, text, message_id=f"m{i}"),
                                Sink(f"r{i}"))
        await asyncio.sleep(5)  # the n-gram model's coalesced re-estimation
        gc.collect()
        after = rss_mb()
    print(f"neighbour memory: {before:.0f} MB -> {after:.0f} MB after {messages} messages of "
          f"4 KB (+{after - before:.0f} MB; goal: within 100 MB), "
          f"{time.perf_counter() - started:.0f} s")


def serve_fake(urls, delay: float) -> None:
    from bench.remote import serve_fake as serve

    serve(urls, delay)


async def run(args, model: str, url: str, folder: Path) -> None:
    ratios = {}
    for engine in filter(None, args.engines.split(",")):
        ratios[engine] = await one_engine(engine, folder, model, url, args)
    if ratios:
        print("neighbour: " + ", ".join(f"{e} {r:.2f}x" for e, r in ratios.items()))
    if args.memory_messages:
        await memory(folder, model, url, args.memory_messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="eliza,ngram,transformer,remote")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=3, help="of the three phases, pooled")
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--every", type=float, default=4.0, help="seconds between messages")
    parser.add_argument("--memory-messages", type=int, default=2000, help="0: skip")
    parser.add_argument("--model", help="the transformer's model; default: build the tiny one")
    parser.add_argument("--without-learning", action="store_true",
                        help="the n-gram model learns nothing: its cost (issue 26 item 3) out")
    args = parser.parse_args()
    if args.without_learning:
        from engines.ngram.engine import NgramEngine

        async def learn_nothing(self: NgramEngine, text: str, lang: str) -> None:
            pass

        NgramEngine.learn = learn_nothing  # type: ignore[method-assign]
    urls: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve_fake, args=(urls, 0.02), daemon=True)
    server.start()
    try:
        url = urls.get(timeout=60)
        with tempfile.TemporaryDirectory() as scratch:
            model = args.model
            if model is None:
                from engines.transformer.tiny import make_tiny

                model = str(make_tiny(Path(scratch) / "tiny", progress=lambda _: None))
            asyncio.run(run(args, model, url, Path(scratch)))
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
