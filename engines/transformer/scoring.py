"""/next and /probe for the transformer: the probability of each possible next token, shown as
words, and of whole continuations.

Both run on the worker's thread as calls made of passes (worker.call with a generator): the
context is read in chunks of the worker's `prefill_chunk` tokens, one pass per step of the
batch (chunks.py), so a long /probe does not stall the other chats' replies. /probe reads its
context once and scores every continuation from that cache in one more pass. Log-probabilities
are taken in float32, as the evaluation takes them.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import torch

from engines.transformer.chunks import columns_per_pass, prefill_passes
from engines.transformer.prefix import seeded_cache


def next_token_probs(worker: Any, ids: list[int],
                     adapter: str) -> Generator[None, None, torch.Tensor]:
    """The model's distribution over the token after `ids` (worker thread, one pass a step)."""
    out, _ = yield from _read(worker, ids, adapter)
    return torch.softmax(out.logits[0, -1].float(), dim=-1).cpu()


def top_words(tokenizer: Any, probs: torch.Tensor, k: int) -> list[tuple[str, float]]:
    """The k most likely next words: tokens decoded and stripped, the same word summed
    (" sehr" and "sehr" are one word to a reader), special and blank tokens left out."""
    special = set(tokenizer.all_special_ids)
    words: dict[str, float] = {}
    values, ids = torch.topk(probs, min(len(probs), 20 * k))
    for p, token in zip(values.tolist(), ids.tolist(), strict=True):
        word = "" if token in special else tokenizer.decode([token]).strip()
        if word and "\ufffd" not in word:
            words[word] = words.get(word, 0.0) + p
    return sorted(words.items(), key=lambda item: -item[1])[:k]


def continuation_logprobs(worker: Any, context: list[int], continuations: list[list[int]],
                          adapter: str) -> Generator[None, None, list[float]]:
    """ln p(continuation | context) for each: the context read once, then the continuations
    from its cache, as many together per pass as `prefill_chunk` tokens hold (right-padded;
    the padding comes after the tokens scored)."""
    out, cache = yield from _read(worker, context, adapter)
    kv = [(layer.keys, layer.values) for layer in cache.layers]  # read, never written to
    last = out.logits[0, -1].float()  # predicts each continuation's first token
    scores: dict[int, float] = {}
    waiting = [i for i, c in enumerate(continuations) if c]
    while waiting:
        yield
        rows = columns_per_pass(max(len(continuations[i]) for i in waiting), worker.prefill_chunk)
        group, waiting = waiting[:rows], waiting[rows:]
        sums = _from_cache(worker, kv, last, len(context), [continuations[i] for i in group],
                           adapter)
        scores.update(zip(group, sums, strict=True))
    return [scores.get(i, 0.0) for i in range(len(continuations))]


def _from_cache(worker: Any, kv: Any, last: torch.Tensor, before: int,
                continuations: list[list[int]], adapter: str) -> list[float]:
    """One pass: the summed ln p of each continuation after the context kept in `kv`."""
    width, rows = max(map(len, continuations)), len(continuations)
    device = worker.device
    ids = torch.tensor([c + [0] * (width - len(c)) for c in continuations], device=device)
    real = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in continuations],
                        device=device)
    mask = torch.cat([torch.ones(rows, before, dtype=real.dtype, device=device), real], dim=1)
    position = torch.arange(before, before + width, device=device).expand(rows, -1)
    step = worker.forward([adapter] * rows, input_ids=ids, attention_mask=mask,
                          position_ids=position, past_key_values=seeded_cache(kv, rows))
    logits = torch.cat([last.expand(rows, 1, -1), step.logits[:, :-1].float()], dim=1)
    picked = logits.gather(2, ids[:, :, None])[:, :, 0] - torch.logsumexp(logits, dim=-1)
    return (picked * real).sum(-1).cpu().tolist()


def _read(worker: Any, ids: list[int], adapter: str) -> Generator[None, None, tuple[Any, Any]]:
    """One row's passes over `ids` into a fresh cache: the last pass's output and the cache."""
    from transformers import DynamicCache

    cache = DynamicCache()
    inputs = torch.tensor([ids], device=worker.device)
    model = worker.adapters.model
    out = yield from prefill_passes(
        lambda **step: worker.forward([adapter], **step), inputs, torch.ones_like(inputs), cache,
        0, model.config._attn_implementation, model.dtype, worker.prefill_chunk)
    return out, cache
