"""The running batch: rows that generate together, sharing one KV cache.

Every row is left-padded to the batch's length, so the newest token of every row sits in the
last column and one forward pass advances them all. Rows of different lengths join by padding
the shorter cache on the left; finished rows leave by selecting the others; columns that only
padding uses any more are cut off. The attention mask hides the padding, and each row's
position ids count only its real tokens, so a row computes what it would compute alone.

This works with the plain DynamicCache of full-attention models (Llama, Qwen2, SmolLM, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class Row:
    """One request's place in the batch."""

    request: Any
    adapter: str  # "__base__" for the base model, as PEFT names it in mixed batches
    last_token: int = -1  # fed to the next forward pass
    seen: list[int] = field(default_factory=list)  # prompt and generated ids, for penalties
    new_tokens: list[int] = field(default_factory=list)
    text: Any = None  # the row's TextDeltas: its reply as text so far


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [rows, longest], padding on the left."""
    width = max(len(s) for s in sequences)
    ids = [[pad_id] * (width - len(s)) + s for s in sequences]
    mask = [[0] * (width - len(s)) + [1] * len(s) for s in sequences]
    return torch.tensor(ids), torch.tensor(mask)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip the padding: 0, 1, 2, ... over each row's real tokens."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


class Batch:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.cache: Any = None  # a transformers DynamicCache, or None while empty
        self.mask: torch.Tensor | None = None  # [rows, columns] of 1 (token) and 0 (padding)

    def __len__(self) -> int:
        return len(self.rows)

    def join(self, rows: list[Row], cache: Any, mask: torch.Tensor) -> None:
        """Add freshly prefilled rows with their own cache and mask."""
        if not self.rows:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for mine, theirs in zip(_layers(self.cache), _layers(cache), strict=True):
            mine.keys = torch.cat([_pad_kv(mine.keys, width), _pad_kv(theirs.keys, width)])
            mine.values = torch.cat([_pad_kv(mine.values, width), _pad_kv(theirs.values, width)])
        self.mask = torch.cat([_pad_mask(self.mask, width), _pad_mask(mask, width)])
        self.rows += rows

    def step_inputs(self) -> dict[str, torch.Tensor]:
        """The inputs of one decode step: every row's last token, after its own real tokens."""
        device = self.mask.device
        ids = torch.tensor([[row.last_token] for row in self.rows], device=device)
        position = self.mask.sum(-1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=-1)
        return {"input_ids": ids, "attention_mask": self.mask, "position_ids": position}

    def keep(self, keep: list[bool]) -> None:
        """Drop the rows whose flag is False, then the columns only they were using."""
        if all(keep):
            return
        self.rows = [row for row, k in zip(self.rows, keep, strict=True) if k]
        if not self.rows:
            self.cache = self.mask = None
            return
        index = torch.tensor([i for i, k in enumerate(keep) if k], device=self.mask.device)
        self.mask = self.mask[index]
        unused = int((self.mask.cumsum(-1) == 0).sum(-1).min())
        self.mask = self.mask[:, unused:]
        for layer in _layers(self.cache):
            layer.keys = layer.keys[index, :, unused:]
            layer.values = layer.values[index, :, unused:]

    def clear(self) -> list[Row]:
        rows, self.rows, self.cache, self.mask = self.rows, [], None, None
        return rows


def _layers(cache: Any) -> list[Any]:
    return list(cache.layers)


def _pad_kv(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """[rows, heads, columns, dim] padded on the left of the columns to `width`."""
    return F.pad(tensor, (0, 0, width - tensor.shape[2], 0))


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(mask, (width - mask.shape[1], 0))
