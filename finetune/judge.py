"""The gate's look at what users will see: base model and candidate answer the same held-out
prompts (sampled as the engine samples), and their replies are measured.

  kl        the mean per-token KL(candidate || base) of the whole next-token distributions at
            the candidate's own sampled replies: how far the adapter moved where it speaks
  fluency   the perplexity of the candidate's replies under the base model, as a ratio to that
            of the base model's own replies: word salad reads as improbable to the base model
  reward    the reward model's score of each reply; per prompt, the candidate's mean minus the
            base's, with a 95% bootstrap interval over the prompts (paired: same prompts)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch

from finetune import reward as rewarding
from finetune.batches import (
    Encoded,
    Encoder,
    collate,
    fp32_logits,
    mean_kl,
    reference_log_probs,
    token_logps_kl,
)

CANDIDATE = "candidate"


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    max_new_tokens: int


@dataclass
class Reply:
    prompt: int  # index into the prompts
    encoded: Encoded  # the prompt's and the reply's tokens (with end of turn unless cut)
    cut: bool
    text: str


def gate_prompts(heldout: list[dict[str, Any]], count: int, seed: int) -> list[tuple[str, str]]:
    """Up to `count` distinct held-out (prompt, language), in a seeded order."""
    distinct = sorted({(r["prompt"], r["lang"]) for r in heldout})
    random.Random(seed).shuffle(distinct)
    return distinct[:count]


@torch.no_grad()
def sample(model: Any, encoder: Encoder, prompts: list[tuple[str, str]], how: Sampling,
           seed: int, per_prompt: int = 2, batch_size: int = 16) -> list[Reply]:
    """`per_prompt` replies to each prompt from `model` as it stands (adapter on or off)."""
    tokenizer = encoder.tokenizer
    asked = [i for i in range(len(prompts)) for _ in range(per_prompt)]
    ids = [encoder(prompts[i][0], "", prompts[i][1], cut=True).prompt for i in asked]
    torch.manual_seed(seed)
    replies = []
    for start in range(0, len(ids), batch_size):
        part = ids[start : start + batch_size]
        replies += _generate(model, tokenizer, part, asked[start : start + batch_size], how)
    return replies


def _generate(model: Any, tokenizer: Any, ids: list[list[int]], asked: list[int],
              how: Sampling) -> list[Reply]:
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    inputs = torch.tensor([[pad] * (width - len(i)) + i for i in ids], device=device)
    attention = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids], device=device)
    out = model.generate(input_ids=inputs, attention_mask=attention, do_sample=True,
                         temperature=max(how.temperature, 1e-3), top_k=how.top_k,
                         top_p=how.top_p, repetition_penalty=how.repetition_penalty,
                         max_new_tokens=how.max_new_tokens, pad_token_id=pad)
    eos = tokenizer.eos_token_id
    replies = []
    for prompt_ids, row, index in zip(ids, out[:, width:].tolist(), asked, strict=True):
        ended = eos in row
        tokens = row[: row.index(eos)] if ended else row
        text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
        replies.append(Reply(index, Encoded(prompt_ids, tokens + ([eos] if ended else [])),
                             not ended, text))
    return replies


@torch.no_grad()
def base_logps(model: Any, replies: list[Reply], pad_id: int, device: str,
               batch_size: int = 16) -> tuple[float, int]:
    """(summed log-probability of the replies' tokens under the base model, token count)."""
    total, count = 0.0, 0
    with model.disable_adapter():
        for batch in _batches(replies, pad_id, device, batch_size):
            logps, mask, _ = token_logps_kl(model, None, batch)
            total += float((logps * mask).sum())
            count += int(mask.sum())
    return total, count


@torch.no_grad()
def kl_from_base(model: Any, replies: list[Reply], pad_id: int, device: str,
                 batch_size: int = 16) -> float:
    """The mean per-token KL(adapter || base) at the replies' tokens (adapter as it is set)."""
    total, count = 0.0, 0
    for batch in _batches(replies, pad_id, device, batch_size):
        with model.disable_adapter():
            reference = reference_log_probs(model, batch)
        mask = batch["target"][:, 1:]
        log_all = fp32_logits(model, batch["input_ids"], batch["attention_mask"])[:, :-1]
        rows = mean_kl(log_all.log_softmax(-1), reference, mask)
        total += float((rows * mask.sum(-1)).sum())
        count += int(mask.sum())
    return total / max(count, 1)


def _batches(replies: list[Reply], pad_id: int, device: str, size: int):
    for i in range(0, len(replies), size):
        yield collate([r.encoded for r in replies[i : i + size]], pad_id, device)


def paired_interval(candidate: dict[int, list[float]], base: dict[int, list[float]],
                    resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean over prompts of (candidate's mean reward - base's), and its 95% bootstrap interval
    (prompts resampled: replies to one prompt are not independent)."""
    diffs = torch.tensor([sum(candidate[p]) / len(candidate[p]) - sum(base[p]) / len(base[p])
                          for p in sorted(candidate) if p in base])
    if len(diffs) == 0:
        return 0.0, 0.0, 0.0
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(diffs), (resamples, len(diffs)), generator=generator)
    means = diffs[picks].mean(1)
    low, high = means.quantile(0.025), means.quantile(0.975)
    return float(diffs.mean()), float(low), float(high)


def by_prompt(replies: list[Reply], rewards: torch.Tensor) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for reply, value in zip(replies, rewards.tolist(), strict=True):
        out.setdefault(reply.prompt, []).append(value)
    return out


def measure(model: Any, encoder: Encoder, prompts: list[tuple[str, str]], how: Sampling,
            reward_model: rewarding.RewardModel | None, device: str, seed: int
            ) -> dict[str, Any]:
    """Sample from base and candidate (the PEFT model's adapter CANDIDATE) and measure both."""
    pad = encoder.tokenizer.pad_token_id
    with model.disable_adapter():
        base = sample(model, encoder, prompts, how, seed)
    model.set_adapter(CANDIDATE)
    mine = sample(model, encoder, prompts, how, seed)
    base_sum, base_count = base_logps(model, base, pad, device)
    mine_sum, mine_count = base_logps(model, mine, pad, device)
    result = {
        "prompts": len(prompts), "replies": len(mine),
        "kl": round(kl_from_base(model, mine, pad, device), 4),
        "fluency": round(math.exp(base_sum / max(base_count, 1) - mine_sum / max(mine_count, 1)),
                         4),
        "cut": {"base": sum(r.cut for r in base), "candidate": sum(r.cut for r in mine)},
        "examples": {"base": [r.text for r in base[:2]], "candidate": [r.text for r in mine[:2]]},
    }
    if reward_model is not None:
        with model.disable_adapter():
            scored = [reward_model.score(rewarding.features(model, [r.encoded for r in part],
                                                            pad, device))
                      for part in (base, mine)]
        diff, low, high = paired_interval(by_prompt(mine, scored[1]), by_prompt(base, scored[0]))
        result["reward"] = {"base": round(float(scored[0].mean()), 4),
                            "candidate": round(float(scored[1].mean()), 4),
                            "gain": round(diff, 4), "gain_low": round(low, 4),
                            "gain_high": round(high, 4)}
    return result


def language_refusal(sampled: dict[str, Any], opts: Any) -> str:
    if sampled["fluency"] > opts.max_fluency_ratio:
        return (f"its replies read {sampled['fluency']:.2f}x less fluently than the base "
                f"model's (their perplexity under the base model; at most "
                f"{opts.max_fluency_ratio:.2f}x allowed)")
    if sampled["kl"] > opts.max_kl:
        return (f"its replies moved {sampled['kl']:.2f} nats per token from the base model "
                f"(KL; at most {opts.max_kl:.2f} allowed)")
    return ""


def reward_refusal(sampled: dict[str, Any], reward_check: dict[str, Any], opts: Any) -> str:
    if not reward_check["trusted"]:
        return (f"the reward model trained on the votes is not surely better than chance on "
                f"{reward_check['heldout']} held-out votes (pair accuracy "
                f"{_show(reward_check['accuracy'])}, 95% lower bound "
                f"{_show(reward_check['accuracy_low'])}; needs above 0.50 on at least "
                f"{opts.reward_min_heldout})")
    gain = sampled["reward"]
    if gain["gain_low"] <= 0:
        return (f"the reward model does not surely prefer its replies to the base model's "
                f"(reward {gain['gain']:+.2f}, 95% interval [{gain['gain_low']:+.2f}, "
                f"{gain['gain_high']:+.2f}])")
    return ""


def _show(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
