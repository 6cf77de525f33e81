"""The KV cache that grows in place against transformers' DynamicCache, in one process.

At 16 chats the batched worker's rate as a ratio to sequential `generate()`, once with each
cache, taking turns for `--rounds` rounds (a shared machine's bursts hit both alike):

    python -m bench.kv_cache --model data/models/smollm2-135m-instruct --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from bench.transformer import SAMPLING, concurrent, sequential_generate
from engines.base import EngineSetup
from engines.transformer.engine import TransformerEngine, TransformerOptions


async def run(model: str, rounds: int, replies: int, tokens: int) -> None:
    from transformers import DynamicCache

    from engines.transformer import kv

    growing = kv.growing_cache
    options = TransformerOptions(model=model, device="cpu", threads=2, max_batch=16,
                                 max_new_tokens=tokens, **SAMPLING["greedy"])
    engine = TransformerEngine(options, EngineSetup(Path(tempfile.mkdtemp())))
    await engine.start()
    engine.worker.eos_ids = set()  # fixed-length replies
    await concurrent(engine, 4, 8)  # warm-up
    for number in range(rounds):
        baseline = sequential_generate(engine, 4, tokens)
        kv.growing_cache = DynamicCache
        concat = (await concurrent(engine, 16, replies))["tokens_s"]
        kv.growing_cache = growing
        grown = (await concurrent(engine, 16, replies))["tokens_s"]
        print(f"round {number + 1}: generate() {baseline:.1f} tokens/s; 16 chats with "
              f"DynamicCache {concat / baseline:.2f}x, growing in place {grown / baseline:.2f}x "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kv_cache")
    parser.add_argument("--model", required=True, help="a model folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replies", type=int, default=16, help="replies per measurement")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per reply")
    args = parser.parse_args()
    asyncio.run(run(args.model, args.rounds, args.replies, args.tokens))


if __name__ == "__main__":
    main()
