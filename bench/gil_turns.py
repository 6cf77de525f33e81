"""A transformer forward pass beside a pure-Python thread, at several GIL switch intervals.

The bot runs the transformer's worker thread, the event loop and the engines' Python threads
(the n-gram's search and estimation) in one process. torch gives the GIL up around every op
and takes it back after, hundreds of times a forward pass; each time, a Python thread that
holds it keeps it for up to the switch interval (the "convoy effect", CPython bpo-7946). This
prints the median time of one decode pass (4 rows, one token each, no cache) alone and beside
a thread that only runs Python, as a ratio to alone, for Python's default interval (5 ms) and
shorter ones; bot/app.py sets GIL_TURN while the bot serves.

    python -m bench.gil_turns [--model DIR] [--passes 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from bot.app import GIL_TURN

INTERVALS = (0.005, 0.0005, GIL_TURN)


def python_only(stop: threading.Event) -> None:
    while not stop.is_set():
        counts: dict[int, int] = {}
        for i in range(20_000):
            counts[i % 977] = counts.get(i % 977, 0) + i


def median_pass(model, ids: torch.Tensor, passes: int) -> float:
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        with torch.no_grad():
            model(ids, use_cache=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model folder; default: build the tiny one")
    parser.add_argument("--passes", type=int, default=40)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)  # the bench's worker: one thread, as bench.neighbour runs it
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model
        if model_dir is None:
            from engines.transformer.tiny import make_tiny

            model_dir = str(make_tiny(Path(scratch) / "tiny", progress=lambda _: None))
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.randint(0, 100, (4, 1))
    before = sys.getswitchinterval()
    print(f"model {model_dir}, one decode pass of 4 rows, torch threads 1, median of "
          f"{args.passes}")
    try:
        for interval in INTERVALS:
            sys.setswitchinterval(interval)
            alone = median_pass(model, ids, args.passes)
            stop = threading.Event()
            other = threading.Thread(target=python_only, args=(stop,))
            other.start()
            try:
                beside = median_pass(model, ids, args.passes)
            finally:
                stop.set()
                other.join()
            print(f"switch interval {interval * 1000:.1f} ms: alone {alone * 1000:.1f} ms, "
                  f"beside a Python thread {beside * 1000:.1f} ms ({beside / alone:.1f}x)")
    finally:
        sys.setswitchinterval(before)


if __name__ == "__main__":
    main()
