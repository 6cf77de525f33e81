"""New adapter vs active adapter on the held-out votes, and the promotion gate.

For an adapter A and a held-out reply y to x, the implicit reward is
r_A(x, y) = log π_A(y|x) - log π_base(y|x), as in DPO. Metrics per adapter:
  accuracy  the share of (liked, disliked) held-out pairs where the liked reply gets the higher
            reward (ties count half; the base model scores 0.5, chance)
  margin    mean reward of liked replies minus mean reward of disliked ones
  liked_logp  mean log-probability per token of the liked replies (higher: more likely)
Gate: promoted if accuracy is at least [finetune] min_accuracy and not more than `tolerance`
below the active adapter's; otherwise rejected, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from finetune.batches import Encoder, collate, completion_logps, mean_token_logps


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def scores(model: Any, encoder: Encoder, rows: list[dict[str, Any]], device: str,
           batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-prob, mean token log-prob) of each row's completion under `model`."""
    encoded = [encoder(r["prompt"], r["completion"], r["lang"]) for r in rows]
    sums, means = [], []
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            batch = collate(encoded[i : i + batch_size], encoder.tokenizer.pad_token_id, device)
            sums.append(completion_logps(model, batch))
            means.append(mean_token_logps(model, batch))
    return torch.cat(sums).float().cpu(), torch.cat(means).float().cpu()


def metrics(reward: torch.Tensor, token_logps: torch.Tensor, labels: torch.Tensor) -> dict:
    liked, disliked = reward[labels], reward[~labels]
    diff = liked[:, None] - disliked[None, :]
    accuracy = ((diff > 0).float() + 0.5 * (diff == 0).float()).mean()
    return {
        "accuracy": round(float(accuracy), 4),
        "margin": round(float(liked.mean() - disliked.mean()), 4),
        "liked_logp": round(float(token_logps[labels].mean()), 4),
    }


def compare(model: Any, encoder: Encoder, rows: list[dict[str, Any]], adapters: dict[str, str],
            device: str, batch_size: int = 8) -> dict[str, dict]:
    """Metrics of each named adapter loaded in the PeftModel `model` ("" name: base model)."""
    labels = torch.tensor([bool(r["label"]) for r in rows])
    with model.disable_adapter():
        base_sum, base_mean = scores(model, encoder, rows, device, batch_size)
    out = {}
    for label, adapter_name in adapters.items():
        if adapter_name:
            model.set_adapter(adapter_name)
            total, mean = scores(model, encoder, rows, device, batch_size)
        else:
            total, mean = base_sum, base_mean
        out[label] = metrics(total - base_sum, mean, labels)
    return out


def gate(new: dict, active: dict, tolerance: float, min_accuracy: float) -> Decision:
    if new["accuracy"] < min_accuracy:
        return Decision(False, f"held-out preference accuracy {new['accuracy']:.2f} is below "
                               f"the minimum {min_accuracy:.2f}")
    if new["accuracy"] < active["accuracy"] - tolerance:
        return Decision(False, f"held-out preference accuracy {new['accuracy']:.2f} is worse "
                               f"than the active adapter's {active['accuracy']:.2f}")
    return Decision(True, f"held-out preference accuracy {new['accuracy']:.2f} "
                          f"(active: {active['accuracy']:.2f})")


def can_judge(rows: list[dict[str, Any]]) -> str:
    """Why the held-out rows cannot judge an adapter, or "" if they can."""
    if not any(r["label"] for r in rows) or all(r["label"] for r in rows):
        return "the held-out votes need at least one liked and one disliked reply"
    return ""


def load_for_eval(base: Any, candidate: Path, active: Path | None) -> Any:
    """The base model with the candidate (and the active adapter, if any) loaded beside."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, str(candidate), adapter_name="candidate")
    if active is not None:
        model.load_adapter(str(active), adapter_name="active")
    return model.eval()
