"""The running batch: rows that generate together, sharing one KV cache.

Every row is left-padded to the batch's length, so the newest token of every row sits in the
last column and one forward pass advances them all. (A row prefilled from a kept prompt
beginning, prefix.py, has its padding between that beginning and the rest of its prompt.) Rows
of different lengths join by padding the shorter cache on the left; finished rows leave by
selecting the others; leading columns that only padding uses any more are cut off. The
attention mask hides the padding wherever it is, and each row's position ids count only its
real tokens, so a row computes what it would compute alone.
Beside the cache the batch keeps, on the model's device, which tokens each row has seen (for
the repetition penalty) and each row's newest token (the next step's input, as sampled), so a
decode step copies nothing to the device.

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


def prefill_mask(mask: torch.Tensor, attention: str, dtype: torch.dtype) -> torch.Tensor:
    """The attention mask of a left-padded prefill, [rows, 1, columns, columns] for SDPA (bool)
    and eager attention (additive), where every padding position attends to itself.

    From the 2-D mask the model would build "causal and a real key", which leaves a padding
    query nothing to attend to: the CPU's attention returns 0 there, some CUDA kernels NaN, and
    a NaN in the cache's values poisons its whole row (0 x NaN is NaN). Real tokens see exactly
    what they saw before. Other attentions (flash) drop the padding themselves: the 2-D mask.
    """
    if attention not in ("sdpa", "eager"):
        return mask
    columns = mask.shape[1]
    causal = torch.ones(columns, columns, dtype=torch.bool, device=mask.device).tril()
    allowed = (causal & mask.bool()[:, None, :]) | torch.eye(
        columns, dtype=torch.bool, device=mask.device)
    if attention == "sdpa":
        return allowed[:, None]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


class Batch:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.cache: Any = None  # a transformers DynamicCache, or None while empty
        self.mask: torch.Tensor | None = None  # [rows, columns] of 1 (token) and 0 (padding)
        self.seen: torch.Tensor | None = None  # [rows, vocabulary] bool: tokens each row has seen
        self.last: torch.Tensor | None = None  # [rows, 1]: each row's newest token, the next input

    def __len__(self) -> int:
        return len(self.rows)

    def join(self, rows: list[Row], cache: Any, mask: torch.Tensor, seen: torch.Tensor,
             last: torch.Tensor) -> None:
        """Add freshly prefilled rows with their own cache, mask, seen and newest tokens. All
        or nothing: if it fails (out of memory), the batch is as it was."""
        if not self.rows:
            self.rows, self.cache, self.mask, self.seen = list(rows), cache, mask, seen
            self.last = last
            return
        width = max(self.mask.shape[1], mask.shape[1])
        layers = [(torch.cat([_pad_kv(mine.keys, width), _pad_kv(theirs.keys, width)]),
                   torch.cat([_pad_kv(mine.values, width), _pad_kv(theirs.values, width)]))
                  for mine, theirs in zip(_layers(self.cache), _layers(cache), strict=True)]
        joined_mask = torch.cat([_pad_mask(self.mask, width), _pad_mask(mask, width)])
        joined_seen, joined_last = torch.cat([self.seen, seen]), torch.cat([self.last, last])
        for layer, (keys, values) in zip(_layers(self.cache), layers, strict=True):
            layer.keys, layer.values = keys, values
        self.mask, self.seen, self.last = joined_mask, joined_seen, joined_last
        self.rows += rows

    def step_inputs(self) -> dict[str, torch.Tensor]:
        """The inputs of one decode step: every row's last token, after its own real tokens."""
        position = self.mask.sum(-1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=-1)
        return {"input_ids": self.last, "attention_mask": self.mask, "position_ids": position}

    def keep(self, keep: list[bool]) -> None:
        """Drop the rows whose flag is False, then the columns only they were using."""
        if all(keep):
            return
        if not any(keep):
            self.clear()
            return
        index = torch.tensor([i for i, k in enumerate(keep) if k], device=self.mask.device)
        mask = self.mask[index]
        unused = int((mask.cumsum(-1) == 0).sum(-1).min())
        layers = [(layer.keys[index, :, unused:], layer.values[index, :, unused:])
                  for layer in _layers(self.cache)]
        for layer, (keys, values) in zip(_layers(self.cache), layers, strict=True):
            layer.keys, layer.values = keys, values
        self.mask, self.seen, self.last = mask[:, unused:], self.seen[index], self.last[index]
        self.rows = [row for row, k in zip(self.rows, keep, strict=True) if k]

    def clear(self) -> list[Row]:
        rows, self.rows, self.cache, self.mask, self.seen = self.rows, [], None, None, None
        self.last = None
        return rows


def _layers(cache: Any) -> list[Any]:
    return list(cache.layers)


def _pad_kv(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """[rows, heads, columns, dim] padded on the left of the columns to `width`."""
    return F.pad(tensor, (0, 0, width - tensor.shape[2], 0))


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(mask, (width - mask.shape[1], 0))
