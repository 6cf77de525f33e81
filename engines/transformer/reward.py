"""The reward model's reading of a reply, shared by the job that fits it (finetune/reward.py)
and the engine that shows a reply's reward (/why): the base model's last-layer states of the
reply (their mean: what it says; the state at its last token: how it ends) and a logistic head
on them, saved as `reward.pt` beside the adapter it was trained with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

FILE = "reward.pt"


@dataclass
class RewardHead:
    weight: torch.Tensor  # [features]
    bias: float
    mean: torch.Tensor  # the training features' mean and spread, for standardising
    std: torch.Tensor

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """The reward of each row: the log-odds that the rater likes it."""
        return ((features - self.mean) / self.std) @ self.weight + self.bias

    def save(self, path: Path) -> None:
        torch.save({"weight": self.weight, "bias": self.bias, "mean": self.mean,
                    "std": self.std}, path)

    @classmethod
    def load(cls, path: Path) -> RewardHead:
        return cls(**torch.load(path, weights_only=True, map_location="cpu"))


def reply_features(hidden: torch.Tensor, reply_mask: torch.Tensor) -> torch.Tensor:
    """[rows, 2 x hidden] from last-layer states [rows, width, hidden] and a mask of the reply's
    tokens [rows, width]: their mean, and the state at the reply's last token."""
    hidden, mask = hidden.float(), reply_mask.float()
    mean = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    last = mask.shape[1] - 1 - mask.flip(1).argmax(1)
    return torch.cat([mean, hidden[torch.arange(len(last)), last]], -1).cpu()


def reply_ids(tokenizer: Any, prompt_ids: list[int], reply: str, cut: bool) -> list[int]:
    """The prompt's tokens, the reply's, and the end of turn unless the reply was cut."""
    ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    return prompt_ids + ids + ([] if cut else [tokenizer.eos_token_id])
