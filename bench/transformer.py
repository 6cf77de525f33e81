"""Batched generation against sequential `model.generate()` calls, in one process.

For 1, 4 and 16 chats asking at once (each chat asks its questions one after another), prints
the aggregate tokens per second as a ratio to `generate()` called once per reply, the time to
first token, and the event loop's worst stall while the worker generates (a ticker task that
should wake every few milliseconds). Fixed-length replies on both sides, so both do the same
work, and both warmed up before they are timed (the first CUDA calls pay for kernel loading).
By default greedy, without penalty or adapter: that measures batching. `--sampling bot` samples
as the bot's defaults do (temperature, top-k, top-p, repetition penalty) and `--adapter random`
serves through a LoRA adapter: what production does, on both sides.
On a shared machine one measurement can meet a burst of other work, so the baseline and every
level are measured `--rounds` times, taking turns (baseline, 1, 4, 16 chats, baseline, ...):
tokens/s is the best round of each, the first-token median is over the replies of all rounds.

    python -m bench.transformer                      # builds the tiny model in a temp folder
    python -m bench.transformer --model DIR --device cuda --dtype bfloat16
    python -m bench.transformer --sampling bot --adapter random
    python -m bench.transformer --profile            # the worker thread at 16 chats, cProfile
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from engines.base import Conversation, EngineSetup
from engines.transformer.engine import TransformerEngine, TransformerOptions

QUESTIONS = [
    "hello", "What is ELIZA?", "How does a chat bot learn from people?", "AI for everyone is very",
    "Tell me a story about a small bot.", "What is an n-gram model, and why count words?",
    "Can you help me with my homework?", "Where does your knowledge come from?",
]


async def ticker(stalls: list[float], period: float = 0.005) -> None:
    """Wake every `period` seconds and note how late each wake-up was."""
    while True:
        planned = time.perf_counter() + period
        await asyncio.sleep(period)
        stalls.append(time.perf_counter() - planned)


async def chat(engine: TransformerEngine, asks: int, offset: int, ttft: list[float]) -> int:
    tokens = 0
    for i in range(asks):
        conv = Conversation(f"bench:{offset}", QUESTIONS[(offset + i) % len(QUESTIONS)])
        async for _ in engine.reply(conv):
            pass
        tokens += conv.trace["tokens_out"]
        ttft.append(conv.trace["first_token_seconds"])  # from the moment the reply was queued
    return tokens


async def concurrent(engine: TransformerEngine, chats: int, replies: int) -> dict[str, float]:
    ttft: list[float] = []
    stalls: list[float] = []
    tick = asyncio.create_task(ticker(stalls))
    started = time.perf_counter()
    counts = await asyncio.gather(*(chat(engine, replies // chats, c, ttft) for c in range(chats)))
    seconds = time.perf_counter() - started
    tick.cancel()
    return {"tokens_s": sum(counts) / seconds, "ttft": ttft,
            "ttft_max": max(ttft), "stall_max": max(stalls, default=0.0)}


SAMPLING = {  # what each --sampling means, for the engine and for generate()
    "greedy": {"temperature": 0.0, "repetition_penalty": 1.0},
    "bot": {"temperature": 0.7, "top_k": 50, "top_p": 0.9, "repetition_penalty": 1.1},
}


def generate_kwargs(sampling: str) -> dict[str, object]:
    values = SAMPLING[sampling]
    if values["temperature"] <= 0:
        return {"do_sample": False, "repetition_penalty": values["repetition_penalty"]}
    return {"do_sample": True, **values}


def random_adapter(model: str, folder: Path) -> Path:
    """A LoRA adapter with random weights on q_proj and v_proj: its cost, not its replies."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(folder)
    return folder


def sequential_generate(engine: TransformerEngine, replies: int, new_tokens: int,
                        sampling: str = "greedy") -> float:
    """The baseline: `generate()` once per reply, one after another; tokens per second."""
    import torch

    from engines.transformer import prompt

    torch.set_num_threads(engine.worker.threads)  # the same threads as the worker has
    model, tokenizer = engine.adapters.model, engine.tokenizer
    tokens, started = 0, time.perf_counter()
    for i in range(replies):
        system = engine.system_prompt("en")
        ids, _ = prompt.build(tokenizer, system, [], QUESTIONS[i % len(QUESTIONS)], 10**6)
        inputs = torch.tensor([ids], device=engine.device)
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs),
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             pad_token_id=tokenizer.pad_token_id, **generate_kwargs(sampling))
        tokens += out.shape[1] - inputs.shape[1]
    if engine.device.startswith("cuda"):
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - started)


LEVELS = (1, 4, 16)  # chats at once


def profile_worker() -> Any:
    """cProfile of the generation worker's thread (a profiler sees only the thread it runs
    in), for the whole life of the engines started from now on."""
    import cProfile

    from engines.transformer.worker import GenerationWorker

    profiler, run = cProfile.Profile(), GenerationWorker._run
    GenerationWorker._run = lambda worker: profiler.runcall(run, worker)
    return profiler


async def run(args: argparse.Namespace, model: Path | str, adapter: str) -> None:
    options = TransformerOptions(
        model=str(model), device=args.device, dtype=args.dtype, adapter=adapter,
        max_new_tokens=args.tokens, threads=args.threads, max_batch=16, **SAMPLING[args.sampling],
    )
    profiler = profile_worker() if args.profile else None
    engine = TransformerEngine(options, EngineSetup(Path(tempfile.mkdtemp())))
    await engine.start()
    engine.worker.eos_ids = set()  # fixed-length replies, as min_new_tokens gives generate()
    await concurrent(engine, 4, 8)  # warm-up, both sides
    if profiler is not None:  # the warm-up and one pass of the widest level, nothing else
        import pstats

        await concurrent(engine, LEVELS[-1], args.replies)
        await engine.close()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return
    sequential_generate(engine, 1, args.tokens, args.sampling)
    baselines: list[float] = []
    levels: dict[int, list[dict[str, Any]]] = {chats: [] for chats in LEVELS}
    for _ in range(args.rounds):
        baselines.append(sequential_generate(engine, args.baseline_replies, args.tokens,
                                             args.sampling))
        for chats in LEVELS:
            levels[chats].append(await concurrent(engine, chats, args.replies))
    await engine.close()
    dtype = next(engine.adapters.model.parameters()).dtype
    print(f"model {model} on {engine.device} ({str(dtype).split('.')[-1]}), {args.tokens} new "
          f"tokens per reply, sampling {args.sampling}, adapter {engine.version}, torch threads "
          f"{args.threads or 'auto'}, best of {args.rounds} rounds")
    report(max(baselines), baselines, levels)


def report(baseline: float, baselines: list[float], levels: dict[int, list[dict]]) -> None:
    rounds = " / ".join(f"{b:.1f}" for b in baselines)
    print(f"sequential generate(): {baseline:.1f} tokens/s (baseline; rounds: {rounds})")
    print("| chats at once | tokens/s | vs generate() | first token median | max "
          "| loop stall max |")
    print("|---:|---:|---:|---:|---:|---:|")
    for chats, runs in levels.items():
        tokens_s = max(r["tokens_s"] for r in runs)
        ttft = statistics.median(t for r in runs for t in r["ttft"])
        print(f"| {chats} | {tokens_s:.1f} | {tokens_s / baseline:.2f}x | {ttft * 1000:.0f} ms "
              f"| {max(r['ttft_max'] for r in runs) * 1000:.0f} ms "
              f"| {max(r['stall_max'] for r in runs) * 1000:.1f} ms |")
    alone = statistics.median(t for r in levels[LEVELS[0]] for t in r["ttft"]) * 1000
    print(f"first token at {LEVELS[0]} chat: {alone:.0f} ms median (goal 300 ms on the real model)")
    widest = levels[LEVELS[-1]]
    ttft = statistics.median(t for r in widest for t in r["ttft"]) * 1000
    print(f"first token at {LEVELS[-1]} chats: {ttft:.0f} ms median (goal 100 ms)")
    print(f"transformer: {max(r['tokens_s'] for r in widest) / baseline:.2f}x (goal 6x)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transformer")
    parser.add_argument("--model", help="a model folder or hub id; default: build the tiny one")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto",
                        choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per reply")
    parser.add_argument("--replies", type=int, default=32, help="replies per concurrency level")
    parser.add_argument("--baseline-replies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2,
                        help="measurements of each, taking turns; the best counts")
    parser.add_argument("--profile", action="store_true",
                        help="profile the worker thread at 16 chats instead")
    parser.add_argument("--threads", type=int, default=2, help="torch threads; 0: half the cores")
    parser.add_argument("--sampling", default="greedy", choices=sorted(SAMPLING),
                        help="greedy: batching alone; bot: the bot's default sampling")
    parser.add_argument("--adapter", default="",
                        help="a LoRA adapter folder, or `random` for a random one on the model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model is None:
            from engines.transformer.tiny import make_tiny

            model = make_tiny(Path(scratch) / "tiny", progress=lambda _: None)
        adapter = args.adapter
        if adapter == "random":
            adapter = str(random_adapter(str(model), Path(scratch) / "random-adapter"))
        asyncio.run(run(args, model, adapter))


if __name__ == "__main__":
    main()
