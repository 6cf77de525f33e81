"""Does the loop learn? A simulated rater with a hidden taste votes on a tiny model's replies;
one fine-tuning job later, the share of replies it likes on prompts it never rated should rise.
A rater that votes at random is the control: the gate should not promote its adapter.

    python -m bench.feedback_lift [--pretrain-steps 400] [--work DIR]

1. A tiny model, briefly pre-trained (python -m engines.transformer make-tiny --pretrain-steps).
2. It answers training prompts; the taste rater likes replies that ask a question back (end in
   "?"), the random rater flips a coin. Votes go into a bot database like real ones would.
3. `python -m finetune run` on each database: export -> train -> evaluate -> promote or not.
4. Base model and taste adapter answer held-out prompts; the rater judges; the shares of liked
   replies are printed with Wilson 95% intervals, and the lift with a 95% interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import DB_FILE as DB  # noqa: E402

Rater = Callable[[str], bool]


def asks_back(reply: str) -> bool:
    """The hidden taste: a reply that ends with a question."""
    return reply.strip().endswith("?")


def coin(seed: int) -> Rater:
    rng = random.Random(seed)
    return lambda reply: rng.random() < 0.5


def wilson(liked: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = liked / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def lift_interval(a: int, n: int, b: int, m: int, z: float = 1.96) -> tuple[float, float, float]:
    """The difference of two shares b/m - a/n with a normal-approximation 95% interval."""
    p, q = a / n, b / m
    half = z * math.sqrt(p * (1 - p) / n + q * (1 - q) / m)
    return q - p, q - p - half, q - p + half


def make_model(folder: Path, steps: int, threads: int) -> None:
    if (folder / "config.json").exists():
        return
    subprocess.run([sys.executable, "-m", "engines.transformer", "make-tiny", str(folder),
                    "--pretrain-steps", str(steps), "--threads", str(threads)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def prompts(count: int, seed: int) -> list[str]:
    from engines.transformer.tiny import sentences

    lines = sorted({s for s in sentences("en") if 8 <= len(s) <= 80})  # the corpus repeats some
    random.Random(seed).shuffle(lines)
    return lines[:count]


class Generator:
    """Samples replies as the engine would prompt: chat template with the system prompt."""

    def __init__(self, model_dir: Path, max_new_tokens: int, seed: int) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.system = (ROOT / "engines/transformer/prompts/en.txt").read_text().strip()
        self.max_new_tokens = max_new_tokens
        self.seed = seed

    def with_adapter(self, folder: Path) -> None:
        from peft import PeftModel

        self.model = PeftModel.from_pretrained(self.model, str(folder)).eval()

    def replies(self, texts: list[str], per_prompt: int) -> list[tuple[str, str]]:
        import torch

        from engines.transformer import prompt

        torch.manual_seed(self.seed)
        asked = [t for t in texts for _ in range(per_prompt)]
        chats = [prompt.messages(self.system, [], t) for t in asked]
        ids = [prompt.encode(self.tokenizer, c) for c in chats]
        out: list[tuple[str, str]] = []
        for start in range(0, len(ids), 64):
            out += self._batch(asked[start:start + 64], ids[start:start + 64])
        return out

    def _batch(self, asked: list[str], ids: list[list[int]]) -> list[tuple[str, str]]:
        import torch

        batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
        with torch.no_grad():
            generated = self.model.generate(
                **batch, do_sample=True, temperature=1.0, top_k=50, top_p=1.0,
                max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
        new = generated[:, batch["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return list(zip(asked, (t.strip() for t in texts), strict=True))


async def store_votes(db: Path, rated: list[tuple[str, str, bool]]) -> None:
    from tests.finetune_helpers import seed

    await seed(db, [(p, r, {"rater": 1 if liked else -1}) for p, r, liked in rated],
               asker="asker")


def finetune(work: Path, name: str, model_dir: Path, rated, args) -> dict:
    """One `python -m finetune run` on a fresh bot database holding `rated`."""
    data = work / name
    data.mkdir(parents=True, exist_ok=True)
    asyncio.run(store_votes(data / DB, rated))
    config = data / "config.toml"
    config.write_text(
        f'[engines.transformer]\nmodel = "{model_dir}"\n[finetune]\nmin_votes = 20\n'
        f"sft_steps = {args.sft_steps}\npreference_steps = {args.preference_steps}\n"
        f"learning_rate = {args.learning_rate}\nbatch_size = 16\nmax_tokens = 128\n"
        f'continue_from_active = false\ndevice = "cpu"\nthreads = {args.threads}\n'
        f"seed = {args.seed}\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "finetune", "run", "--data-dir", str(data),
                           "--config", str(config)], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    verdict = next(e for e in events if e.get("event") == "evaluated")
    return verdict | {"seconds": time.monotonic() - started,
                      "folder": data / "adapters" / verdict["adapter"]}


def share(rater: Rater, replies: list[tuple[str, str]]) -> tuple[int, int, int]:
    """(liked, judged, distinct replies): the last shows whether the taste was learned or the
    model collapsed onto a few liked sentences."""
    return sum(rater(r) for _, r in replies), len(replies), len({r for _, r in replies})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.feedback_lift")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--train-prompts", type=int, default=150)
    parser.add_argument("--heldout-prompts", type=int, default=100)
    parser.add_argument("--replies", type=int, default=4, help="replies per prompt")
    parser.add_argument("--sft-steps", type=int, default=60)
    parser.add_argument("--preference-steps", type=int, default=60)
    parser.add_argument("--learning-rate", type=float, default=0.002)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="keep the model and databases here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="feedback-lift-"))
    model_dir = work / "tiny"
    make_model(model_dir, args.pretrain_steps, args.threads)
    texts = prompts(args.train_prompts + args.heldout_prompts, args.seed)
    train, heldout = texts[: args.train_prompts], texts[args.train_prompts:]
    generator = Generator(model_dir, args.max_new_tokens, args.seed)
    replies = generator.replies(train, args.replies)
    taste = [(p, r, asks_back(r)) for p, r in replies]
    flip = coin(args.seed)
    randomly = [(p, r, flip(r)) for p, r in replies]
    print(f"training prompts: {len(train)} x {args.replies} replies; taste rater likes "
          f"{sum(v for *_, v in taste)} of {len(taste)}")
    tasted = finetune(work, "taste", model_dir, taste, args)
    control = finetune(work, "random", model_dir, randomly, args)

    before = share(asks_back, generator.replies(heldout, args.replies))
    generator.with_adapter(tasted["folder"])
    after_replies = generator.replies(heldout, args.replies)
    after = share(asks_back, after_replies)
    for _, reply in after_replies[: 3 * args.replies : args.replies]:
        print(f"  e.g. after: {reply!r}")
    report(args, before, after, tasted, control)
    return 0


def report(args, before, after, tasted, control) -> None:
    lo_b, hi_b = wilson(*before[:2])
    lo_a, hi_a = wilson(*after[:2])
    diff, lo_d, hi_d = lift_interval(*before[:2], *after[:2])
    print(f"held-out prompts: {args.heldout_prompts} x {args.replies} replies, judged by the taste")
    print(f"  liked before (base model):   {before[0] / before[1]:.1%}  "
          f"[{lo_b:.1%}, {hi_b:.1%}]  ({before[0]}/{before[1]}; {before[2]} distinct)")
    print(f"  liked after (taste adapter): {after[0] / after[1]:.1%}  "
          f"[{lo_a:.1%}, {hi_a:.1%}]  ({after[0]}/{after[1]}; {after[2]} distinct)")
    ratio = (after[0] / after[1]) / max(before[0] / before[1], 1e-9)
    print(f"  lift: {diff:+.1%} [{lo_d:+.1%}, {hi_d:+.1%}], {ratio:.2f}x the base rate")
    for name, verdict in (("taste", tasted), ("random", control)):
        new = verdict.get("new", {})
        print(f"gate, {name} rater: {'promoted' if verdict['promote'] else 'rejected'} — "
              f"{verdict['reason']} (margin {new.get('margin', float('nan')):+.2f}, "
              f"job {verdict['seconds']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
