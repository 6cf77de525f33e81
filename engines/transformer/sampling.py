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
    probs, ids = candidates(logits / sampling.temperature, sampling.top_k, sampling.top_p)
    if generator is not None and generator.device.type != probs.device.type:
        generator = None
    choice = torch.multinomial(probs, 1, generator=generator)
    return ids.gather(-1, choice).squeeze(-1)


def candidates(logits: torch.Tensor, top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, token ids), both [rows, n]: the tokens top-k and top-p leave, most likely
    first, and their probabilities (0 for those top-p drops).

    Top-k picks its k tokens (topk: no sort of the whole vocabulary), and top-p then works on
    those k alone: a sort and a sampling over 50 values instead of 50,000 per row and step."""
    vocabulary = logits.shape[-1]
    if 0 < top_k < vocabulary:
        values, ids = torch.topk(logits, top_k, dim=-1)
    elif top_p < 1.0:
        values, ids = torch.sort(logits, descending=True, dim=-1)
    else:
        return torch.softmax(logits, dim=-1), torch.arange(vocabulary, device=logits.device
                                                           ).expand_as(logits)
    probs = torch.softmax(values, dim=-1)
    if top_p < 1.0:  # keep the smallest set of most likely tokens whose probabilities add up
        drop = probs.cumsum(-1) - probs > top_p  # to top_p; the first token always stays
        probs = torch.softmax(values.masked_fill(drop, float("-inf")), dim=-1)
    return probs, ids
