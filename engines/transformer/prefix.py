"""The KV cache of prompt beginnings that many replies share (the system prompt, mostly).

Every prompt of a language starts with the same system text in the chat template: some 80
tokens of the tiny model's 90-100. Their keys and values depend only on those tokens (attention
is causal; their positions are 0, 1, 2, ...) and on the adapter, so they are computed once, kept
here, and a new reply's prefill runs over the rest of its prompt alone. The first prompt with a
new beginning is prefilled whole, and its beginning is cut out of its cache for the next ones:
no pass is spent on the beginning alone. A few beginnings are kept, the least recently used
dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

Key = tuple[str, tuple[int, ...]]  # (adapter, the shared tokens)
KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values, [1, heads, tokens, dim]


def key_of(adapter: str, prompt_ids: list[int], shared: int) -> Key | None:
    """The key of a prompt's shared beginning; None if it has none worth keeping."""
    return (adapter, tuple(prompt_ids[:shared])) if shared > 0 else None


class Prefixes:
    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._kv: OrderedDict[Key, KV] = OrderedDict()
        self.hits = 0  # prefills that started from a kept beginning

    def __contains__(self, key: Key | None) -> bool:
        return key is not None and key in self._kv

    def get(self, key: Key) -> KV:
        self._kv.move_to_end(key)
        return self._kv[key]

    def keep(self, key: Key, cache: Any, row: int, start: int) -> None:
        """Cut the beginning `key` names out of row `row` of a prefilled cache, where it sits
        in the columns from `start` on."""
        if key in self._kv:
            return
        end = start + len(key[1])
        self._kv[key] = [(layer.keys[row:row + 1, :, start:end].clone(),
                          layer.values[row:row + 1, :, start:end].clone())
                         for layer in cache.layers]
        while len(self._kv) > self.limit:
            self._kv.popitem(last=False)

    def drop(self, adapters: set[str]) -> None:
        """Forget the beginnings kept for these adapters (unloaded: a later adapter of the same
        id may differ)."""
        for key in [k for k in self._kv if k[0] in adapters]:
            del self._kv[key]

    def clear(self) -> None:
        self._kv.clear()


def seeded_cache(kv: KV, rows: int) -> Any:
    """A DynamicCache holding the kept beginning once for each of `rows` rows."""
    from engines.transformer.kv import growing_cache

    cache = growing_cache()
    for index, (keys, values) in enumerate(kv):
        cache.update(keys.expand(rows, -1, -1, -1).contiguous(),
                     values.expand(rows, -1, -1, -1).contiguous(), index)
    return cache
