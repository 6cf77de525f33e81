"""Block 6 of bench/gpu_first_run.sh: the engine serves the adapter a fine-tuning job just
promoted, in a batch that mixes it with the base model, answers /next, and says how much GPU
memory serving took at its peak.

    python bench/gpu_serve.py JOB_DIR MODEL_DIR      (DEVICE=cuda|cpu, SUMMARY=file to append to)
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import torch

from bot.adapters import Adapters
from bot.store import Store
from engines.base import Conversation, EngineSetup
from engines.transformer.engine import TransformerEngine, TransformerOptions
from finetune.settings import load_settings

TOKENS = 16


async def one(engine: TransformerEngine, conv: Conversation) -> str:
    return "".join([d async for d in engine.reply(conv)])


async def main(work: Path, model: str, dev: str) -> str:
    settings = load_settings(work / "config.toml", str(work / "data"))
    store = await Store.open(settings.db)
    adapters = Adapters(store, settings.adapters_dir)
    setup = EngineSetup(work / "engine", adapters_dir=settings.adapters_dir,
                        active_adapter=adapters.active)
    engine = TransformerEngine(TransformerOptions(model=model, device=dev,
                                                  max_new_tokens=TOKENS), setup)
    await engine.start()
    engine.worker.eos_ids = set()
    print("info:", engine.info(), "| dtype:", next(engine.adapters.model.parameters()).dtype)
    convs = [Conversation(f"t:{i}", text, adapter=pin) for i, (text, pin) in
             enumerate([("hello there", ""), ("how are you", "base"), ("do you dream", "")])]
    texts = await asyncio.gather(*(one(engine, c) for c in convs))
    for conv, text in zip(convs, texts, strict=True):
        print(conv.version, conv.trace["device"], conv.trace["tokens_out"], repr(text))
    words = await engine.next_words("How do you", "en")
    print("next words:", words)
    peak = (f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB allocated, "
            f"{torch.cuda.max_memory_reserved() / 2**20:.0f} MiB reserved"
            if torch.cuda.is_available() else "no GPU")
    print("peak GPU memory after serving:", peak)
    ok = all(c.trace["tokens_out"] == TOKENS for c in convs) and words
    await engine.close()
    await store.close()
    return (f"- serving on {engine.device}: versions {[c.version for c in convs]}, tokens "
            f"{[c.trace['tokens_out'] for c in convs]}, /next {'ok' if words else 'empty'}"
            f"{'' if ok else ' **CHECK**'}; peak GPU memory after serving: {peak}")


if __name__ == "__main__":
    line = asyncio.run(main(Path(sys.argv[1]), sys.argv[2], os.environ.get("DEVICE", "cuda")))
    with open(os.environ["SUMMARY"], "a") as f:
        f.write(line + "\n")
