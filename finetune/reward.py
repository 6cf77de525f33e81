"""A reward model trained on the votes: RLHF's reward-model step, made small.

The base model reads a prompt and a reply (as the engine prompts it); the reward is a logistic
regression on two of its last-layer states: the mean over the reply's tokens (what it says) and
the state at its last token (how it ends: an end-of-turn token, or nothing where it was cut).
It is fitted to the training votes (liked: 1, disliked: 0) and must then rank the held-out votes
better than chance, with a 95% lower bound above 0.5, on at least [finetune] reward_min_heldout
of them: a reward model fitted to a random rater agrees with an adapter fitted to the same
noise, so an unchecked one would wave that adapter through. Saved beside the adapter
(`reward.pt`), so /why can show a reply's reward under the reward model of the active adapter.
"""

from __future__ import annotations

from typing import Any

import torch

from engines.transformer.reward import FILE, RewardHead, reply_features
from finetune.batches import Encoded, Encoder, collate
from finetune.evaluate import accuracy_lower_bound, pairwise_accuracy

__all__ = ["FILE", "RewardModel", "check", "features", "fit", "train"]
RewardModel = RewardHead  # the job's name for it
L2 = 0.01  # ridge penalty on the standardised features: 500 votes, 1000+ features


def encode_rows(encoder: Encoder, rows: list[dict[str, Any]]) -> list[Encoded]:
    return [encoder(r["prompt"], r["completion"], r["lang"], r.get("cut", False)) for r in rows]


@torch.no_grad()
def features(base: Any, encoded: list[Encoded], pad_id: int, device: str,
             batch_size: int = 8) -> torch.Tensor:
    """[rows, 2 x hidden]: the reply's mean last-layer state and the state at its last token,
    under `base` (a causal LM; a PEFT model must have its adapter switched off)."""
    causal_lm = base.get_base_model() if hasattr(base, "get_base_model") else base
    decoder = causal_lm.get_decoder()
    out = []
    for i in range(0, len(encoded), batch_size):
        batch = collate(encoded[i : i + batch_size], pad_id, device)
        hidden = decoder(input_ids=batch["input_ids"],
                         attention_mask=batch["attention_mask"],
                         use_cache=False).last_hidden_state.float()
        out.append(reply_features(hidden, batch["target"]))
    return torch.cat(out)


def fit(x: torch.Tensor, liked: torch.Tensor) -> RewardModel:
    """Logistic regression with a ridge penalty (L-BFGS: small, convex, deterministic)."""
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")
    target = liked.float()

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(z @ weight + bias, target)
        value = value + L2 * weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return RewardModel(weight.detach(), float(bias.detach()), mean, std)


def check(model: RewardModel, x: torch.Tensor, rows: list[dict[str, Any]],
          min_heldout: int) -> dict[str, Any]:
    """The reward model's pair accuracy on held-out votes, its 95% lower bound (a bootstrap
    over prompts, as for adapters), and whether it may judge: enough votes, bound above 0.5."""
    labels = torch.tensor([bool(r["label"]) for r in rows])
    groups = [f"{r['lang']}:{r['prompt']}" for r in rows]
    both = bool(labels.any()) and not bool(labels.all())
    reward = model.score(x)
    accuracy = pairwise_accuracy(reward, labels) if both else 0.5
    low = accuracy_lower_bound(reward, labels, groups) if both else 0.5
    trusted = len(rows) >= min_heldout and low > 0.5
    return {"accuracy": round(accuracy, 4), "accuracy_low": round(low, 4),
            "heldout": len(rows), "trusted": trusted}


def train(base: Any, encoder: Encoder, data: Any, device: str, min_heldout: int
          ) -> tuple[RewardModel | None, dict[str, Any]]:
    """Fit on data.kto, check on data.heldout: (the model, its check); no model when the
    training votes are all of one kind."""
    pad = encoder.tokenizer.pad_token_id
    liked = torch.tensor([bool(r["label"]) for r in data.kto])
    if not bool(liked.any()) or bool(liked.all()):
        return None, {"accuracy": None, "accuracy_low": None, "heldout": len(data.heldout),
                      "trusted": False}
    model = fit(features(base, encode_rows(encoder, data.kto), pad, device), liked)
    held = features(base, encode_rows(encoder, data.heldout), pad, device)
    return model, check(model, held, data.heldout, min_heldout)
