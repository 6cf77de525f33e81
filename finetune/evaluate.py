"""New adapter vs active adapter on the held-out votes, and the promotion gate.

For an adapter A and a held-out reply y to x, the implicit reward is DPO's
log π_A(y|x) - log π_base(y|x), taken per token of y: summed, long replies (which move most)
would outweigh the rest, and the ranking of liked above disliked would mostly measure length.
Metrics per adapter:
  accuracy  the share of (liked, disliked) held-out pairs where the liked reply gets the higher
            reward (ties count half; the base model scores 0.5, chance)
  margin    mean reward of liked replies minus mean reward of disliked ones
  accuracy_low  the lower end of a one-sided 95% confidence interval of `accuracy`: the 5th
            percentile over bootstrap resamples of the held-out prompts (not of single replies:
            replies to one prompt share much of their reward, so they are not independent
            evidence; counted one by one, chance passed the gate in 2 of 8 random-rater runs)
  liked_logp  mean log-probability per token of the liked replies (higher: more likely)
Gate: promoted if accuracy_low reaches [finetune] min_accuracy (0.6 by default: with 95%
confidence, at least 60% of pairs ranked right) and accuracy is not more than `tolerance` below
the active adapter's; otherwise rejected, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from finetune.batches import Encoder, collate, mean_token_logps


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def scores(model: Any, encoder: Encoder, rows: list[dict[str, Any]], device: str,
           batch_size: int) -> torch.Tensor:
    """The mean log-probability per token of each row's completion under `model`."""
    encoded = [encoder(r["prompt"], r["completion"], r["lang"], r.get("cut", False)) for r in rows]
    means = []
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            batch = collate(encoded[i : i + batch_size], encoder.tokenizer.pad_token_id, device)
            means.append(mean_token_logps(model, batch))
    return torch.cat(means).float().cpu()


def pairwise_accuracy(reward: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of (liked, disliked) pairs ranked right by reward; ties count half."""
    diff = reward[labels][:, None] - reward[~labels][None, :]
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


def accuracy_lower_bound(reward: torch.Tensor, labels: torch.Tensor, groups: list[str],
                         resamples: int = 2000, seed: int = 0) -> float:
    """One-sided 95% lower bound of the pairwise accuracy, by a bootstrap over groups
    (prompts): resample the prompts with replacement, keep all replies of each."""
    members = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    clusters = [torch.tensor(rows) for rows in members.values()]
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(resamples):
        pick = torch.randint(len(clusters), (len(clusters),), generator=generator).tolist()
        rows = torch.cat([clusters[c] for c in pick])
        chosen = labels[rows]
        both = bool(chosen.any()) and not bool(chosen.all())
        values.append(pairwise_accuracy(reward[rows], chosen) if both else 0.5)
    return float(torch.tensor(values).quantile(0.05))


def metrics(reward: torch.Tensor, token_logps: torch.Tensor, labels: torch.Tensor,
            groups: list[str]) -> dict:
    return {
        "accuracy": round(pairwise_accuracy(reward, labels), 4),
        "accuracy_low": round(accuracy_lower_bound(reward, labels, groups), 4),
        "margin": round(float(reward[labels].mean() - reward[~labels].mean()), 4),
        "liked_logp": round(float(token_logps[labels].mean()), 4),
    }


def compare(model: Any, encoder: Encoder, rows: list[dict[str, Any]], adapters: dict[str, str],
            device: str, batch_size: int = 8) -> dict[str, dict]:
    """Metrics of each named adapter loaded in the PeftModel `model` ("" name: base model)."""
    labels = torch.tensor([bool(r["label"]) for r in rows])
    groups = [f"{r['lang']}:{r['prompt']}" for r in rows]
    with model.disable_adapter():
        base_mean = scores(model, encoder, rows, device, batch_size)
    out = {}
    for label, adapter_name in adapters.items():
        if adapter_name:
            model.set_adapter(adapter_name)
            mean = scores(model, encoder, rows, device, batch_size)
        else:
            mean = base_mean
        out[label] = metrics(mean - base_mean, mean, labels, groups)
    return out


def gate(new: dict, active: dict, tolerance: float, min_accuracy: float) -> Decision:
    if new["accuracy_low"] < min_accuracy:
        return Decision(False, f"held-out preference accuracy {new['accuracy']:.2f} is not "
                               f"surely above {min_accuracy:.2f} (95% lower bound "
                               f"{new['accuracy_low']:.2f})")
    if worse_than_active(new, active, tolerance):
        return Decision(False, f"held-out preference accuracy {new['accuracy']:.2f} is worse "
                               f"than the active adapter's {active['accuracy']:.2f}")
    return Decision(True, f"held-out preference accuracy {new['accuracy']:.2f} "
                          f"(active: {active['accuracy']:.2f})")


def worse_than_active(new: dict, active: dict, tolerance: float) -> bool:
    """The held-out votes rank the new adapter's replies worse than the active adapter's (the
    base model: 0.5, chance): not unsure, against it."""
    return new["accuracy"] < active["accuracy"] - tolerance


def can_judge(rows: list[dict[str, Any]]) -> str:
    """Why the held-out rows cannot judge an adapter, or "" if they can."""
    if not any(r["label"] for r in rows) or all(r["label"] for r in rows):
        return "the held-out votes need at least one liked and one disliked reply"
    return ""


def load_for_eval(base: Any, candidate: Path, active: Path | None) -> Any:
    """The base model with the candidate (and the active adapter, if any) loaded beside."""
    from peft import PeftModel

    # torch_device: PEFT would read the files onto a GPU whenever there is one
    device = str(base.device)
    model = PeftModel.from_pretrained(base, str(candidate), adapter_name="candidate",
                                      torch_device=device)
    if active is not None:
        model.load_adapter(str(active), adapter_name="active", torch_device=device)
    return model.eval()
