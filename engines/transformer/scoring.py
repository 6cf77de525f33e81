"""/next and /probe for the transformer: the probability of each possible next token, shown as
words, and of whole continuations."""

from __future__ import annotations

from typing import Any

import torch


def next_token_probs(worker: Any, ids: list[int], adapter: str) -> torch.Tensor:
    """The model's distribution over the token after `ids` (worker thread only)."""
    inputs = torch.tensor([ids], device=worker.device)
    out = worker.forward([adapter], input_ids=inputs, attention_mask=torch.ones_like(inputs))
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


def continuation_logprob(worker: Any, context: list[int], continuation: list[int],
                         adapter: str) -> float:
    """ln p(continuation | context): one forward pass over both, the log-probabilities of the
    continuation's tokens summed (worker thread only)."""
    if not continuation:
        return 0.0
    inputs = torch.tensor([context + continuation], device=worker.device)
    out = worker.forward([adapter], input_ids=inputs, attention_mask=torch.ones_like(inputs))
    # the logits at position i predict token i+1: those before each continuation token
    logits = out.logits[0, len(context) - 1: -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(1, torch.tensor(continuation, device=logp.device)[:, None])
    return float(picked.sum().cpu())
