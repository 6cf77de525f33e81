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

from engines.transformer.chunks import prefill_passes
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
    """ln p(continuation | context) for each: the context read once, then every continuation
    from its cache in one pass (right-padded; padding comes after the tokens scored)."""
    out, cache = yield from _read(worker, context, adapter)
    scored = [c for c in continuations if c]
    if not scored:
        return [0.0] * len(continuations)
    yield
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    width, before = max(len(c) for c in scored), len(context)
    ids = torch.tensor([c + [0] * (width - len(c)) for c in scored], device=worker.device)
    mask = torch.tensor([[1] * (before + len(c)) + [0] * (width - len(c)) for c in scored],
                        device=worker.device)
    position = torch.arange(before, before + width, device=worker.device).expand(len(scored), -1)
    step = worker.forward([adapter] * len(scored), input_ids=ids, attention_mask=mask,
                          position_ids=position, past_key_values=seeded_cache(kv, len(scored)))
    # the context's last logits predict each continuation's first token; then its own
    first = out.logits[0, -1:].float().expand(len(scored), 1, -1)
    logp = torch.log_softmax(torch.cat([first, step.logits[:, :-1].float()], dim=1), dim=-1)
    picked = logp.gather(2, ids[:, :, None])[:, :, 0] * mask[:, before:]
    sums = iter(picked.sum(-1).cpu().tolist())
    return [float(next(sums)) if c else 0.0 for c in continuations]


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
