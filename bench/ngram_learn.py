"""What learning costs the n-gram engine as the store grows: one message learned at 1k, 10k and
100k stored messages, /forget of a person with 1,000 messages, and memory after 2,000 messages
of 4 KB; each against the old way (count into the whole tables, rebuild to forget), measured in
the same process.

    python -m bench.ngram_learn [--sizes 1000 10000 100000] [--messages 200] [--no-corpora]

Stored messages: 8-14 words from forget_spam's vocabulary, by 300 people in 100 chats (a few
common phrases among them). Now: `NgramEngine.learn` (k-anonymous counts and the chat's layer,
the shared models estimated in the background when a sequence reaches k people), timed from the
call until the message is counted; `withdraw` of one person's 1,000 messages, timed until the
shared models no longer hold them. Baseline (the engine before): `Language.learn` of the
message into counts that hold every stored message (each message merged into the whole
tables), and a rebuild from the corpus snapshot and every remaining stored message to forget.
Memory: the process's resident size before and after one person's 2,000 messages of 4 KB, with
the default bound (`max_learned_ngrams`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.forget_spam import WORDS
from engines.base import EngineSetup, Written
from engines.ngram import corpus_cache
from engines.ngram.engine import NgramEngine, NgramOptions

PEOPLE, CHATS = 300, 100
COMMON = ["see you tomorrow", "thank you very much", "good morning everyone"]


def messages(n: int, seed: int, person: str = "") -> list[Written]:
    rng = random.Random(seed)
    found = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(8, 14))
        if rng.random() < 0.2:
            words += rng.choice(COMMON).split()
        who = person or f"p{rng.randrange(PEOPLE)}"
        found.append(Written(" ".join(words), "en", who, f"c{rng.randrange(CHATS)}"))
    return found


def options(corpora: bool) -> NgramOptions:
    return NgramOptions(corpora=corpora, time_budget=0.05)


async def engine_with(data_dir: Path, stored: list[Written], corpora: bool) -> NgramEngine:
    async def texts() -> list[Written]:
        return stored

    engine = NgramEngine(options(corpora), EngineSetup(data_dir=data_dir, stored_texts=texts))
    await engine.start()
    return engine


def old_language(data_dir: Path, stored: list[Written], corpora: bool):
    """The old engine's counts: the corpora and every stored message counted in full."""
    language = corpus_cache.base_language("en", options(corpora), data_dir)
    language.learn(m.text for m in stored)
    return language


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"mean {statistics.mean(samples) * 1000:7.2f} ms, p99 {p99 * 1000:7.2f} ms, "
            f"max {ordered[-1] * 1000:7.2f} ms")


async def learning_cost(data_dir: Path, size: int, args: argparse.Namespace) -> None:
    stored = messages(size, seed=size)
    new = messages(args.messages, seed=1)
    started = time.perf_counter()
    engine = await engine_with(data_dir, stored, not args.no_corpora)
    start_s = time.perf_counter() - started
    now = []
    for message in new:
        t0 = time.perf_counter()
        await engine.learn(message)
        now.append(time.perf_counter() - t0)
    await engine.settle()
    language, counting = engine.languages["en"], []
    for message in messages(args.messages, seed=2):  # the counting alone, in CPU time:
        t0 = time.thread_time()  # what it costs, whatever else the machine runs
        language.learn_message(message.text, message.person, message.chat)
        counting.append(time.thread_time() - t0)
    await engine.close()
    old_counts = old_language(data_dir, stored, not args.no_corpora)
    old = []
    for message in new[: max(20, args.messages // 10)]:
        t0 = time.perf_counter()
        await asyncio.to_thread(old_counts.learn, [message.text])
        old.append(time.perf_counter() - t0)
    ratio = statistics.mean(old) / statistics.mean(now)
    print(f"{size:>7,} stored: learn() {ms(now)} (the counting alone, CPU: mean "
          f"{statistics.mean(counting) * 1000:.2f} ms, max {max(counting) * 1000:.2f} ms); "
          f"old {ms(old)}; {ratio:.0f}x (start, learning all stored: {start_s:.1f} s)")


async def forget_cost(data_dir: Path, args: argparse.Namespace) -> None:
    theirs = messages(1000, seed=7, person="leaver")
    others = messages(args.forget_store, seed=8)
    engine = await engine_with(data_dir, others + theirs, not args.no_corpora)
    t0 = time.perf_counter()
    await engine.withdraw(theirs)
    now = time.perf_counter() - t0
    t0 = time.perf_counter()
    await engine.withdraw(theirs)  # again: nothing of theirs is held
    again = time.perf_counter() - t0
    await engine.close()
    t0 = time.perf_counter()
    await asyncio.to_thread(engine.languages["en"].estimate)
    estimation = time.perf_counter() - t0
    t0 = time.perf_counter()
    language = await asyncio.to_thread(old_language, data_dir, others, not args.no_corpora)
    await asyncio.to_thread(language.estimate)
    old = time.perf_counter() - t0
    print(f"/forget of 1,000 messages among {len(others):,} stored: now {now * 1000:.0f} ms "
          f"(of which one re-estimation of the shared models, as some sequences fell below k: "
          f"about {estimation * 1000:.0f} ms; a second time: {again * 1000:.2f} ms); "
          f"old rebuild {old * 1000:.0f} ms; {old / now:.1f}x")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def memory(data_dir: Path, args: argparse.Namespace) -> None:
    engine = await engine_with(data_dir, [], not args.no_corpora)
    before = rss_mb()
    rng = random.Random(3)
    for i in range(2000):
        text = " ".join(rng.choices(WORDS, k=800)) + f" z{i}"  # about 4 KB
        await engine.learn(Written(text[:4096], "en", "heavy", "c-heavy"))
    await engine.settle()
    learned = engine.languages["en"].learned
    print(f"memory: {before:.0f} MB -> {rss_mb():.0f} MB after 2,000 messages of 4 KB "
          f"(+{rss_mb() - before:.0f} MB; {learned.entries:,} learned entries held, "
          f"bound {engine.options.max_learned_ngrams:,}, {learned.pruned:,} pruned)")
    await engine.close()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        print(f"corpora: {'no' if args.no_corpora else 'en, packaged'}; "
              f"{args.messages} messages learned at each size")
        for size in args.sizes:
            await learning_cost(data_dir, size, args)
        if args.forget_store:
            await forget_cost(data_dir, args)
        if not args.no_memory:
            await memory(data_dir, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--forget-store", type=int, default=10_000,
                        help="stored messages of other people beside the leaver's 1,000"
                             " (0: no /forget)")
    parser.add_argument("--no-corpora", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
