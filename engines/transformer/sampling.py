"""Choosing the next token of each row from its logits: penalty, temperature, top-k, top-p."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7  # 0: always the most likely token (greedy)
    top_k: int = 50  # 0: no limit
    top_p: float = 0.9  # 1: no limit
    repetition_penalty: float = 1.1  # 1: none; >1 makes tokens already seen less likely

    def describe(self) -> dict[str, float]:
        return asdict(self)


def seen_mask(sequences: list[list[int]], vocabulary: int, device: Any) -> torch.Tensor:
    """[rows, vocabulary] bool, True where a row's sequence holds the token (one copy to the
    device for all rows)."""
    rows = torch.repeat_interleave(torch.arange(len(sequences)),
                                   torch.tensor([len(s) for s in sequences], dtype=torch.long))
    columns = torch.tensor([token for s in sequences for token in s], dtype=torch.long)
    mask = torch.zeros(len(sequences), vocabulary, dtype=torch.bool)
    mask[rows, columns] = True
    return mask.to(device)


def penalise(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty: seen tokens' logits divided (if > 0) or multiplied by it."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def next_tokens(
    logits: torch.Tensor,
    seen: torch.Tensor,
    sampling: Sampling,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row of `logits` [rows, vocab], on their device; `seen` [rows, vocab]
    marks the tokens each row has seen (see `seen_mask`)."""
    logits = penalise(logits.float(), seen, sampling.repetition_penalty)
    if sampling.temperature <= 0:
        return logits.argmax(-1)
    logits = logits / sampling.temperature
    if 0 < sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        logits = _top_p(logits, sampling.top_p)
    probs = torch.softmax(logits, dim=-1)
    if generator is not None and generator.device.type != probs.device.type:
        generator = None
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities add up to top_p."""
    ordered, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
    drop = cumulative - torch.softmax(ordered, dim=-1) > top_p  # the first token always stays
    ordered = ordered.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
