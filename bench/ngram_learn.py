"""How long chat messages take to reach the n-gram model under a steady stream, against one
re-estimation per message (how the engine learned before, in the same process).

    python -m bench.ngram_learn [--messages 30] [--every 0.1] [--lang en]

The engine trains on the packaged corpora of --lang (from its snapshot after the first run).
--messages chat messages arrive --every seconds. Baseline: each message is counted and the
whole model estimated again before the next is taken (the old engine's one lock per
language serialised them, so a queue builds whenever an estimation takes longer than the
pause between messages). Now: `NgramEngine.learn`, counting at once and estimating at most
every `estimate_every` seconds. Measured: from the first message until the models hold the
last one, and how many estimations that took. No settle(): the background estimation must
get there by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from engines.base import EngineContext
from engines.ngram.engine import NgramEngine, NgramOptions

TEXT = "Message number {i} says that the weather is fine today."


async def _engine(data_dir: Path) -> NgramEngine:
    async def stored():
        return []

    engine = NgramEngine(NgramOptions(), EngineContext(data_dir=data_dir, stored_texts=stored))
    await engine.start()
    return engine


async def baseline(engine: NgramEngine, lang: str, n: int, every: float) -> tuple[float, int]:
    """One learn + estimate per message, in arrival order, as the old engine did."""
    language = engine.languages[lang]
    started, before = time.perf_counter(), language.estimations
    for i in range(n):
        await asyncio.sleep(max(0.0, started + i * every - time.perf_counter()))
        await asyncio.to_thread(language.learn, [TEXT.format(i=i)])
        await asyncio.to_thread(language.estimate)
    return time.perf_counter() - started, language.estimations - before


async def deferred(engine: NgramEngine, lang: str, n: int, every: float) -> tuple[float, int]:
    language = engine.languages[lang]
    started, before = time.perf_counter(), language.estimations
    target = language.tokens
    for i in range(n):
        await asyncio.sleep(max(0.0, started + i * every - time.perf_counter()))
        target += len(TEXT.format(i=i).split()) + 1  # the words and the period
        await engine.learn(TEXT.format(i=i), lang)
    while language.models.tokens < target:  # bounded by estimate_every after the last one
        await asyncio.sleep(0.005)
    took = time.perf_counter() - started
    await engine.close()
    return took, language.estimations - before


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = await _engine(Path(tmp))
        old_s, old_n = await baseline(engine, args.lang, args.messages, args.every)
        engine = await _engine(Path(tmp))  # fresh counts, from the snapshot
        new_s, new_n = await deferred(engine, args.lang, args.messages, args.every)
    print(f"{args.messages} messages, one every {args.every} s, {args.lang} corpora "
          f"({engine.languages[args.lang].models.tokens:,} tokens)")
    print(f"baseline, estimate per message: {old_s:6.2f} s until the last is in the model, "
          f"{old_n} estimations")
    print(f"counted at once, estimate_every={engine.options.estimate_every} s: {new_s:6.2f} s, "
          f"{new_n} estimations")
    print(f"ngram_learn: {old_s / new_s:.2f}x (goal > 1x, and far fewer estimations)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--lang", default="en")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
