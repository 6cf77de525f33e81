"""/next and /probe for the transformer: the probability of each possible next token, shown as
words, and of whole continuations.

Both run on the worker's thread as calls made of passes (worker.call with a generator, in
their chat's turn): the context is read in chunks of the worker's `prefill_chunk` tokens, one
pass per step of the batch (chunks.py), so a long /probe does not stall the other chats'
replies. /probe reads its context once and scores its continuations from that cache, as many
a pass as the chunk holds. Log-probabilities are float32 over only the positions read, as
fine-tuning's evaluation computes them (fp32_logits, used by both).
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
    logits, _ = yield from _read(worker, ids, adapter)
    return logits[0, -1].softmax(-1).cpu()


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
    logits, cache = yield from _read(worker, context, adapter)
    kv = [(layer.keys, layer.values) for layer in cache.layers]  # read, never written to
    last = logits[0, -1]  # predicts each continuation's first token
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
    step = _pass(worker, adapter, 0, input_ids=ids, attention_mask=mask, position_ids=position,
                 past_key_values=seeded_cache(kv, rows))
    logits = torch.cat([last.expand(rows, 1, -1), step[:, :-1]], dim=1)
    picked = logits.gather(2, ids[:, :, None])[:, :, 0] - torch.logsumexp(logits, dim=-1)
    return (picked * real).sum(-1).cpu().tolist()


def _read(worker: Any, ids: list[int],
          adapter: str) -> Generator[None, None, tuple[torch.Tensor, Any]]:
    """One row's passes over `ids` into a fresh cache: the last position's float32 logits
    ([1, 1, vocabulary]) and the cache."""
    from transformers import DynamicCache

    cache = DynamicCache()
    inputs = torch.tensor([ids], device=worker.device)
    model = worker.adapters.model
    logits = yield from prefill_passes(
        lambda logits_to_keep, **step: _pass(worker, adapter, logits_to_keep, **step),
        inputs, torch.ones_like(inputs), cache, 0, model.config._attn_implementation,
        model.dtype, worker.prefill_chunk)
    return logits, cache


def _pass(worker: Any, adapter: str, keep: int, input_ids: torch.Tensor,
          attention_mask: torch.Tensor, **cached: Any) -> torch.Tensor:
    """One counted pass under `adapter` that continues a KV cache: float32 logits at the last
    `keep` positions (0: all)."""
    worker.passes += 1
    worker.adapters.select(adapter)
    with torch.no_grad():
        return fp32_logits(worker.adapters.model, input_ids, attention_mask, keep, **cached)


def fp32_logits(model: Any, ids: torch.Tensor, attention: torch.Tensor,
                keep: int = 0, **cached: Any) -> torch.Tensor:
    """The model's logits with the output layer computed in fp32, at the last `keep` positions
    (0: all). `cached`: position_ids and past_key_values for a pass that continues a KV cache
    (scoring's chunks); without them no cache is built (nothing decodes after this pass).

    In bf16 a logit keeps about 3 significant digits, so a summed log-probability of a reply
    is off by a good part of the KTO/DPO margins and of the gate's rewards, whose thresholds
    were set in fp32. The decoder stays in the model's dtype (LoRA layers sit inside it, so
    they take part); only the last matrix product is done in fp32, and only where it is read
    (the vocabulary is wide: all positions' logits of a long prompt are gigabytes). fp32
    models, heads that are more than one linear layer, and soft-capped logits take the plain
    path. Fine-tuning's training, reference and evaluation passes use it too (one home).
    """
    use_cache = "past_key_values" in cached
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = causal_lm.get_output_embeddings()
    plain = (type(head) is not torch.nn.Linear or head.weight.dtype == torch.float32
             or getattr(causal_lm.config, "final_logit_softcapping", None))
    if plain:
        return model(input_ids=ids, attention_mask=attention, use_cache=use_cache,
                     logits_to_keep=keep, **cached).logits.float()
    hidden = causal_lm.get_decoder()(input_ids=ids, attention_mask=attention,
                                     use_cache=use_cache, **cached).last_hidden_state
    hidden = hidden[:, -keep:] if keep else hidden
    bias = None if head.bias is None else head.bias.float()
    with torch.autocast(hidden.device.type, enabled=False):  # bf16 autocast would undo it
        return torch.nn.functional.linear(hidden.float(), head.weight.float(), bias)
