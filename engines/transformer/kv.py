"""A KV cache whose layers grow in place: room for the next tokens is kept at the end of each
layer's keys and values, so a decode step writes one column instead of copying the whole cache.

transformers' DynamicLayer appends with torch.cat, a copy of every layer's keys and values at
every step: for 16 rows of SmolLM2 at a hundred columns some 60 MB a step, a tenth of the
worker's time on the CPU (bench/RESULTS.md). Here the buffers hold SPARE more columns; they are
copied only when full (once per SPARE steps) or when the batch replaces them (rows join or
leave: batch.py sets `keys` and `values`, which become the new buffers, full). Readers see
views of the filled part, as they saw the concatenated tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

SPARE = 64  # columns of room added when a layer's buffers are full


class GrowingLayer(DynamicLayer):
    def __init__(self, **kwargs: Any) -> None:
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        self._filled = 0
        super().__init__(**kwargs)

    # keys and values: the filled part of the buffers; setting them replaces the buffers
    @property
    def keys(self) -> torch.Tensor | None:
        return None if self._keys is None else self._keys[:, :, :self._filled]

    @keys.setter
    def keys(self, tensor: torch.Tensor | None) -> None:
        self._keys = _buffer(tensor)
        self._filled = 0 if self._keys is None else self._keys.shape[2]

    @property
    def values(self) -> torch.Tensor | None:
        return None if self._values is None else self._values[:, :, :self._filled]

    @values.setter
    def values(self, tensor: torch.Tensor | None) -> None:
        self._values = _buffer(tensor)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.dtype, self.device = key_states.dtype, key_states.device
            self.is_initialized = True
        new = key_states.shape[2]
        if self._keys is None or self._filled + new > self._keys.shape[2]:
            self._keys = _grown(self._keys, self._filled, key_states, new)
            self._values = _grown(self._values, self._filled, value_states, new)
        end = self._filled + new
        self._keys[:, :, self._filled:end] = key_states
        self._values[:, :, self._filled:end] = value_states  # type: ignore[index]
        self._filled = end
        return self.keys, self.values  # type: ignore[return-value]


def growing_cache() -> Any:
    """An empty DynamicCache whose layers are GrowingLayers (created as the model fills it)."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache


def _buffer(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A tensor set from outside as the new buffer (None or DynamicLayer's empty start: none)."""
    return tensor if tensor is not None and tensor.dim() == 4 else None


def _grown(buffer: torch.Tensor | None, filled: int, like: torch.Tensor, new: int) -> torch.Tensor:
    """A buffer with room for `new` more columns and SPARE beyond, holding the filled part."""
    rows, heads, _, dim = like.shape
    grown = like.new_empty(rows, heads, filled + new + SPARE, dim)
    if buffer is not None and filled:
        grown[:, :, :filled] = buffer[:, :, :filled]
    return grown
