"""/next and /probe for the transformer: the probability of each possible next token, shown as
words, and of whole continuations."""

from __future__ import annotations

from typing import Any

import torch


def next_token_probs(worker: Any, ids: list[int], adapter: str) -> torch.Tensor:
    """The model's distribution over the token after `ids` (worker thread only)."""
    return log_probs(worker, ids, adapter, keep=1)[-1].exp().cpu()


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


def continuation_logprob(worker: Any, context: list[int], continuation: list[int],
                         adapter: str) -> float:
    """ln p(continuation | context): one forward pass over both, the log-probabilities of the
    continuation's tokens summed (worker thread only)."""
    if not continuation:
        return 0.0
    # the logits at position i predict token i+1: those before each continuation token
    logp = log_probs(worker, context + continuation, adapter, keep=len(continuation) + 1)[:-1]
    picked = logp.gather(1, torch.tensor(continuation, device=logp.device)[:, None])
    return float(picked.sum().cpu())


def log_probs(worker: Any, ids: list[int], adapter: str, keep: int) -> torch.Tensor:
    """[keep, vocabulary]: float32 next-token log-probabilities at the last `keep` positions
    of `ids`, as fine-tuning's evaluation computes them (fp32_logits), under `adapter`; one
    counted forward pass without a KV cache (worker thread only)."""
    inputs = torch.tensor([ids], device=worker.device)
    worker.passes += 1
    worker.adapters.select(adapter)
    with torch.no_grad():
        logits = fp32_logits(worker.adapters.model, inputs, torch.ones_like(inputs), keep)
    return logits[0].log_softmax(-1)


def fp32_logits(model: Any, ids: torch.Tensor, attention: torch.Tensor,
                keep: int = 0) -> torch.Tensor:
    """The model's logits with the output layer computed in fp32, at the last `keep` positions
    (0: all). No KV cache: nothing decodes after this pass.

    In bf16 a logit keeps about 3 significant digits, so a summed log-probability of a reply
    is off by a good part of the KTO/DPO margins and of the gate's rewards, whose thresholds
    were set in fp32. The decoder stays in the model's dtype (LoRA layers sit inside it, so
    they take part); only the last matrix product is done in fp32, and only where it is read
    (the vocabulary is wide: all positions' logits of a long prompt are gigabytes). fp32
    models, heads that are more than one linear layer, and soft-capped logits take the plain
    path. Fine-tuning's training, reference and evaluation passes use it too (one home).
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = causal_lm.get_output_embeddings()
    plain = (type(head) is not torch.nn.Linear or head.weight.dtype == torch.float32
             or getattr(causal_lm.config, "final_logit_softcapping", None))
    if plain:
        return model(input_ids=ids, attention_mask=attention, use_cache=False,
                     logits_to_keep=keep).logits.float()
    hidden = causal_lm.get_decoder()(input_ids=ids, attention_mask=attention,
                                     use_cache=False).last_hidden_state
    hidden = hidden[:, -keep:] if keep else hidden
    bias = None if head.bias is None else head.bias.float()
    with torch.autocast(hidden.device.type, enabled=False):  # bf16 autocast would undo it
        return torch.nn.functional.linear(hidden.float(), head.weight.float(), bias)
