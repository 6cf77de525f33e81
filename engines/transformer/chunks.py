"""Chunked prefill: a long prompt's first pass split over several steps of the batch.

A decode step of the whole batch costs about as much as a short prefill; a 4 KB prompt's prefill
costs as much as dozens of decode steps. Run in one piece between two steps, it stalls every
chat's reply for that long (the neighbour bench: a tenfold p99 for everyone around a person who
sends long messages). So a prefill is cut into passes of at most `chunk` tokens (rows x
columns), and the worker runs one pass per step, with the batch's decode step between two:
nobody's reply waits for more than one chunk at a time, and the long prompt still costs what it
costs, spread out. This is vLLM's chunked prefill (`max_num_batched_tokens`) in miniature.

Each pass's queries are its own columns; its keys are every column so far, from the cache the
passes before it filled (the same mask slicing that lets a prefill start from a kept prompt
beginning, prefix.py). Only the last pass's last logits are read.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import torch

from engines.transformer.batch import positions, prefill_mask


def columns_per_pass(rows: int, chunk: int) -> int:
    """How many columns of `rows` rows fit a pass of `chunk` tokens (one column at least)."""
    return max(1, chunk // max(1, rows))


def prefill_passes(forward: Callable[..., Any], ids: torch.Tensor, mask: torch.Tensor,
                   cache: Any, done: int, attention: str, dtype: torch.dtype,
                   chunk: int) -> Generator[None, None, Any]:
    """Run the prefill of `ids` (the columns after the `done` ones already in `cache`; `mask`
    covers all of them) in passes of at most `chunk` tokens, yielding between two passes;
    returns the last pass's output. `forward(**inputs)` runs one pass."""
    full = prefill_mask(mask, attention, dtype)
    position = positions(mask)
    width = ids.shape[1]
    step = columns_per_pass(ids.shape[0], chunk)
    start = 0
    while True:
        end = min(width, start + step)
        keys = done + end
        # 4-D: this pass's queries against every key so far; 2-D: the model builds the rest
        four = full.dim() == 4
        attention_mask = full[:, :, done + start:keys, :keys] if four else full[:, :keys]
        # logits_to_keep=1: only the last position's logits are ever read
        out = forward(input_ids=ids[:, start:end], attention_mask=attention_mask,
                      position_ids=position[:, done + start:keys], past_key_values=cache,
                      logits_to_keep=1)
        if end == width:
            return out
        start = end
        yield


def next_pass(passes: Generator[Any, Any, Any]) -> Any:
    """Run the next pass of `passes`: None while more are to come, then what they return."""
    try:
        next(passes)
    except StopIteration as finished:
        return finished.value
    return None
