"""`python -m engines.ngram eval --order N --train FILE --test FILE`

Files are tokenised already: whitespace-separated tokens, one sentence per line, as KenLM's
lmplz and query read them. Perplexity follows KenLM: <s> is the first context, </s> is
predicted, out-of-vocabulary tokens are left out of the perplexity and counted on their own.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from engines.ngram.training import train


def read_sentences(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as f:
        return [line.split() for line in f]


def perplexity(logp: np.ndarray, oov: np.ndarray) -> tuple[float, float]:
    """(perplexity without OOV tokens, with them), from log10 probabilities."""
    known = logp[~oov]
    without = 10 ** (-known.sum() / max(len(known), 1))
    return without, 10 ** (-logp.sum() / max(len(logp), 1))


def evaluate(order: int, train_file: Path, test_file: Path) -> dict[str, object]:
    sentences = read_sentences(train_file)
    started = time.perf_counter()
    vocab, model = train(sentences, order)
    train_s = time.perf_counter() - started
    test = [vocab.encode(s) for s in read_sentences(test_file)]
    started = time.perf_counter()
    logp, oov = model.score(test)
    score_s = time.perf_counter() - started
    without, with_oov = perplexity(logp, oov)
    return {
        "train_s": train_s, "counts": model.sizes, "discounts": model.discounts,
        "fallback": model.fallback, "tokens": len(logp), "oov": int(oov.sum()),
        "perplexity": without, "perplexity_with_oov": with_oov,
        "us_per_token": score_s / max(len(logp), 1) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.ngram")
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("eval", help="train on one file, report perplexity on another")
    ev.add_argument("--order", type=int, default=3)
    ev.add_argument("--train", type=Path, required=True)
    ev.add_argument("--test", type=Path, required=True)
    args = parser.parse_args(argv)
    for path in (args.train, args.test):
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            return 2
    result = evaluate(args.order, args.train, args.test)
    print(f"train time: {result['train_s']:.3f} s")
    for k, n in enumerate(result["counts"], start=1):
        d = ", ".join(f"{x:.4f}" for x in result["discounts"][k - 1])
        note = " (fallback)" if result["fallback"][k - 1] else ""
        print(f"{k}-grams: {n}  discounts: {d}{note}")
    print(f"tokens scored: {result['tokens']} (</s> included), OOV: {result['oov']}")
    print(f"perplexity excluding OOVs: {result['perplexity']:.4f}")
    print(f"perplexity including OOVs: {result['perplexity_with_oov']:.4f}")
    print(f"scoring: {result['us_per_token']:.3f} µs per token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
