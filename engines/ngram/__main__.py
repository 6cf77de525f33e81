"""`python -m engines.ngram eval --order N --train FILE --test FILE`, or `... eval --lang de`

With --lang, the language's corpora found on this machine (engines/corpora.toml) are
tokenised, shuffled with a fixed seed and split 90/10 into train and held-out test. Files are
tokenised already: whitespace-separated tokens, one sentence per line, as KenLM's
lmplz and query read them. Perplexity follows KenLM: <s> is the first context, </s> is
predicted, out-of-vocabulary tokens are left out of the perplexity and counted on their own.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from engines import corpora
from engines.ngram.tokens import tokenize
from engines.ngram.training import train


def read_sentences(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as f:
        return [line.split() for line in f]


def perplexity(logp: np.ndarray, oov: np.ndarray) -> tuple[float, float]:
    """(perplexity without OOV tokens, with them), from log10 probabilities."""
    known = logp[~oov]
    without = 10 ** (-known.sum() / max(len(known), 1))
    return without, 10 ** (-logp.sum() / max(len(logp), 1))


def corpus_split(lang: str, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """The language's corpora, tokenised and shuffled: (90% train, 10% held-out test)."""
    sentences = [t for s in corpora.sentences(lang) if (t := tokenize(s, lang))]
    random.Random(seed).shuffle(sentences)
    cut = len(sentences) // 10
    return sentences[cut:], sentences[:cut]


def evaluate(order: int, train_file: Path, test_file: Path) -> dict[str, object]:
    return evaluate_sentences(order, read_sentences(train_file), read_sentences(test_file))


def evaluate_sentences(order: int, sentences: list[list[str]],
                       held_out: list[list[str]]) -> dict[str, object]:
    started = time.perf_counter()
    vocab, model = train(sentences, order)
    train_s = time.perf_counter() - started
    test = [vocab.encode(s) for s in held_out]
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
    ev.add_argument("--train", type=Path, help="tokenised training text, one sentence a line")
    ev.add_argument("--test", type=Path, help="tokenised held-out text, one sentence a line")
    ev.add_argument("--lang", help="instead of files: a 90/10 split of this language's corpora")
    args = parser.parse_args(argv)
    if args.lang:
        result = _evaluate_corpora(args.order, args.lang)
        if result is None:
            return 2
    else:
        if args.train is None or args.test is None:
            print("eval needs --train FILE and --test FILE, or --lang LANG", file=sys.stderr)
            return 2
        for path in (args.train, args.test):
            if not path.is_file():
                print(f"{path}: no such file", file=sys.stderr)
                return 2
        result = evaluate(args.order, args.train, args.test)
    _print(result)
    return 0


def _evaluate_corpora(order: int, lang: str) -> dict[str, object] | None:
    try:
        found = corpora.describe(lang)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return None
    print(f"corpora ({lang}): {', '.join(found.used) or 'none'}")
    if found.missing:
        print(f"not installed: {', '.join(found.missing)}")
    train_set, test_set = corpus_split(lang)
    print(f"train: {len(train_set)} sentences, {sum(map(len, train_set))} tokens; "
          f"held-out test: {len(test_set)} sentences, {sum(map(len, test_set))} tokens")
    return evaluate_sentences(order, train_set, test_set)


def _print(result: dict[str, Any]) -> None:
    print(f"train time: {result['train_s']:.3f} s")
    for k, n in enumerate(result["counts"], start=1):
        d = ", ".join(f"{x:.4f}" for x in result["discounts"][k - 1])
        note = " (fallback)" if result["fallback"][k - 1] else ""
        print(f"{k}-grams: {n}  discounts: {d}{note}")
    print(f"tokens scored: {result['tokens']} (</s> included), OOV: {result['oov']}")
    print(f"perplexity excluding OOVs: {result['perplexity']:.4f}")
    print(f"perplexity including OOVs: {result['perplexity_with_oov']:.4f}")
    print(f"scoring: {result['us_per_token']:.3f} µs per token")


if __name__ == "__main__":
    sys.exit(main())
