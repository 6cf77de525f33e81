"""Does the loop learn? A simulated rater with a hidden taste votes on a tiny model's replies;
one fine-tuning job later, the share of replies it likes on prompts it never rated should rise.
A rater that votes at random is the control: the gate should not promote its adapter.

    python -m bench.feedback_lift [--pretrain-steps 400] [--work DIR] [--raters ...]
    python -m bench.feedback_lift --model DIR     # a real model (SmolLM2): smaller options

1. A tiny model, briefly pre-trained (python -m engines.transformer make-tiny --pretrain-steps),
   or --model DIR (then the options shrink to finish in about 20 minutes on 2 cores; printed).
2. It answers training prompts; each rater votes: "asks" likes replies that ask a question back
   (end in "?"), "you" replies that address the person, "brief" complete replies of at most
   12 words; "random" flips a coin. A reply cut by the token cap is stored marked as cut, as
   the engine marks it. Votes go into a bot database like real ones would.
3. `python -m finetune run` on each database: export -> train -> evaluate -> promote or not
   (the gate: held-out votes, then the sampled replies' fluency, KL and reward).
4. Base model and each adapter answer held-out prompts; the rater judges; the shares of liked
   replies are printed with Wilson 95% intervals, the lift with a 95% interval, and per run one
   JSON line ("RESULT {...}") with the gate's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
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


def addresses(reply: str) -> bool:
    """Another taste: the reply speaks to the person ("you", "your")."""
    return any(w.strip(".,!?;:'\"").lower() in ("you", "your", "you're") for w in reply.split())


def brief(reply: str) -> bool:
    """Another taste: a complete reply (ends a sentence) of at most 12 words."""
    text = reply.strip()
    return 0 < len(text.split()) <= 12 and text.endswith((".", "!", "?"))


TASTES: dict[str, Rater] = {"asks": asks_back, "you": addresses, "brief": brief}


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

    def replies(self, texts: list[str], per_prompt: int) -> list[tuple[str, str, bool]]:
        """(prompt, reply, cut by max_new_tokens) for each prompt, `per_prompt` times."""
        import torch

        from engines.transformer import prompt

        torch.manual_seed(self.seed)
        asked = [t for t in texts for _ in range(per_prompt)]
        chats = [prompt.messages(self.system, [], t) for t in asked]
        ids = [prompt.encode(self.tokenizer, c) for c in chats]
        out: list[tuple[str, str, bool]] = []
        for start in range(0, len(ids), 32):
            out += self._batch(asked[start:start + 32], ids[start:start + 32])
        return out

    def _batch(self, asked: list[str], ids: list[list[int]]) -> list[tuple[str, str, bool]]:
        import torch

        batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
        with torch.no_grad():
            generated = self.model.generate(
                **batch, do_sample=True, temperature=1.0, top_k=50, top_p=1.0,
                max_new_tokens=self.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
        new = generated[:, batch["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        eos = self.tokenizer.eos_token_id
        cut = [eos not in row for row in new.tolist()]
        return list(zip(asked, (t.strip() for t in texts), cut, strict=True))


async def store_votes(db: Path, rated: list[tuple[str, str, bool, bool]]) -> None:
    """(prompt, reply, cut, liked) as a chat with the transformer, one vote each; a cut reply
    carries the engine's mark in its trace."""
    from bot.store import Store
    from engines.base import CUT

    store = await Store.open(db)
    try:
        chat = await store.chat("bench", "c1")
        asker = await store.user("bench", "asker", "asker")
        rater = await store.user("bench", "rater", "rater")
        for prompt, reply, cut, liked in rated:
            asked = await store.add_message(chat, asker, "user", prompt)
            reply_id = await store.add_message(
                chat, asker, "bot", reply, reply_to=asked, engine="transformer",
                engine_version="base", trace={CUT: "max_new_tokens"} if cut else None)
            await store.vote(reply_id, rater, 1 if liked else -1, "👍")
    finally:
        await store.close()


def finetune(work: Path, name: str, model_dir: Path, rated, args) -> dict:
    """One `python -m finetune run` on a fresh bot database holding `rated`."""
    data = work / name
    shutil.rmtree(data, ignore_errors=True)  # a rerun's votes must not add to the last run's
    data.mkdir(parents=True)
    asyncio.run(store_votes(data / DB, rated))
    config = data / "config.toml"
    config.write_text(
        f'[engines.transformer]\nmodel = "{model_dir}"\n[finetune]\nmin_votes = 20\n'
        f"sft_steps = {args.sft_steps}\npreference_steps = {args.preference_steps}\n"
        f"learning_rate = {args.learning_rate}\nbatch_size = {args.batch_size}\n"
        f"max_tokens = {args.max_tokens}\nheldout_percent = {args.heldout_percent}\n"
        f'continue_from_active = false\ndevice = "cpu"\nthreads = {args.threads}\n'
        f"seed = {args.seed}\nkl_weight = {args.kl_weight}\n"
        f"gate_prompts = {args.gate_prompts}\ngate_max_new_tokens = {args.max_new_tokens}\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "finetune", "run", "--data-dir", str(data),
                           "--config", str(config)], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    verdict = next(e for e in events if e.get("event") == "evaluated")
    return verdict | {"seconds": time.monotonic() - started,
                      "folder": data / "adapters" / verdict["adapter"]}


def share(rater: Rater, replies: list[tuple[str, str, bool]]) -> tuple[int, int, int]:
    """(liked, judged, distinct replies): the last shows whether the taste was learned or the
    model collapsed onto a few liked sentences."""
    return (sum(rater(r) for _, r, _ in replies), len(replies),
            len({r for _, r, _ in replies}))


# What a run on a real model (--model) uses unless told otherwise: ~20 minutes on 2 cores.
# 60 prompts, 45% held out by the job: at least 30 held-out votes on seeds 0-4 (the reward
# model's minimum; 40 prompts and 40% left seed 0 with 28). 16 gate prompts: with 8, seed 0's
# reward gain was +1.46 [-0.01, +3.08] -- the interval is over prompts.
REAL = dict(train_prompts=60, heldout_prompts=24, replies=2, sft_steps=6, preference_steps=12,
            batch_size=8, max_tokens=96, max_new_tokens=40, learning_rate=0.001, gate_prompts=16,
            heldout_percent=45)
TINY = dict(train_prompts=150, heldout_prompts=100, replies=4, sft_steps=60, preference_steps=60,
            batch_size=16, max_tokens=128, max_new_tokens=20, learning_rate=0.002,
            gate_prompts=24, heldout_percent=20)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.feedback_lift")
    parser.add_argument("--model", type=Path, help="a model folder (SmolLM2); default: tiny")
    parser.add_argument("--pretrain-steps", type=int, default=400)
    for name in TINY:
        kind = float if name == "learning_rate" else int
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    parser.add_argument("--kl-weight", type=float, default=0.5)
    parser.add_argument("--raters", nargs="+", default=["asks", "you", "brief", "random"],
                        choices=[*TASTES, "random"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="keep the model and databases here")
    args = parser.parse_args(argv)
    for name, value in (REAL if args.model else TINY).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="feedback-lift-"))
    model_dir = args.model or work / "tiny"
    if args.model is None:
        make_model(model_dir, args.pretrain_steps, args.threads)
    print("used: " + json.dumps({k: str(v) if isinstance(v, Path) else v
                                 for k, v in vars(args).items()}))
    texts = prompts(args.train_prompts + args.heldout_prompts, args.seed)
    train, heldout = texts[: args.train_prompts], texts[args.train_prompts:]
    generator = Generator(model_dir, args.max_new_tokens, args.seed)
    replies = generator.replies(train, args.replies)
    before = generator.replies(heldout, args.replies)
    print(f"training prompts: {len(train)} x {args.replies} replies "
          f"({sum(c for *_, c in replies)} cut by the token cap)")
    for name in args.raters:
        rater = TASTES.get(name) or coin(args.seed)
        rated = [(p, r, cut, rater(r)) for p, r, cut in replies]
        print(f"rater {name}: likes {sum(v for *_, v in rated)} of {len(rated)}")
        verdict = finetune(work, f"{name}-seed{args.seed}", model_dir, rated, args)
        after = None
        if name in TASTES:
            judged = Generator(model_dir, args.max_new_tokens, args.seed)
            judged.with_adapter(verdict["folder"])
            after = judged.replies(heldout, args.replies)
            for _, reply, _ in after[: 3 * args.replies : args.replies]:
                print(f"  e.g. after: {reply!r}")
        report(args, name, rater if name in TASTES else None, before, after, verdict)
    return 0


def report(args, name: str, rater: Rater | None, before, after, verdict: dict) -> None:
    """The run in words, then as one RESULT line of JSON (for bench/RESULTS.md's table)."""
    result = figures(args, name, verdict)
    if rater is not None and after is not None:
        b, a = share(rater, before), share(rater, after)
        diff, lo_d, hi_d = lift_interval(*b[:2], *a[:2])
        result |= {"before": [b[0], b[1]], "before_ci": [round(x, 4) for x in wilson(*b[:2])],
                   "after": [a[0], a[1]], "after_ci": [round(x, 4) for x in wilson(*a[:2])],
                   "lift": [round(diff, 4), round(lo_d, 4), round(hi_d, 4)],
                   "distinct_after": a[2],
                   "cut_before": sum(c for *_, c in before), "cut_after": sum(c for *_, c in after)}
        print(f"held-out prompts: {args.heldout_prompts} x {args.replies} replies, judged by "
              f"the {name} taste: liked before {b[0] / b[1]:.1%}, after {a[0] / a[1]:.1%}, "
              f"lift {diff:+.1%} [{lo_d:+.1%}, {hi_d:+.1%}]")
    print(f"gate, {name} rater: {'promoted' if verdict['promote'] else 'rejected'} — "
          f"{verdict['reason']} (fluency {result['fluency']}, KL {result['kl']}, reward model "
          f"{result['reward_model']}, job {verdict['seconds']:.0f} s)")
    print("RESULT " + json.dumps(result))


def figures(args, name: str, verdict: dict) -> dict:
    sampled, check = verdict.get("sampled", {}), verdict.get("reward_model", {})
    new = verdict.get("new", {})
    return {"model": str(args.model or "tiny"), "seed": args.seed, "rater": name,
            "promoted": verdict["promote"], "reason": verdict["reason"],
            "vote_accuracy": new.get("accuracy"), "vote_low": new.get("accuracy_low"),
            "fluency": sampled.get("fluency"), "kl": sampled.get("kl"),
            "reward_model": check.get("accuracy"), "reward_model_low": check.get("accuracy_low"),
            "reward_heldout": check.get("heldout"), "reward_trusted": check.get("trusted"),
            "decided_by": verdict.get("decided_by"),
            "reward_gain": sampled.get("reward"), "cut_gate": sampled.get("cut"),
            "bounds": bounds(), "seconds": round(verdict["seconds"])}


def bounds() -> dict:
    """The gate's bounds the job ran with (the config's defaults: the bench sets none), so a
    later gate rule can be applied to a RESULT line without running the job again."""
    from bot.config import FinetuneOptions

    opts = FinetuneOptions()
    return {name: getattr(opts, name) for name in ("min_accuracy", "tolerance", "max_kl",
                                                    "max_fluency_ratio", "reward_min_heldout")}


if __name__ == "__main__":
    sys.exit(main())
