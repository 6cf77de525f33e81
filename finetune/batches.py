"""Rows -> token ids -> padded batches -> log-probabilities of each row's completion.

A row is encoded exactly as the engine prompts: the chat template with the language's system
prompt and the user's message, then the reply and the end-of-turn token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from engines.transformer import prompt as chat_prompt
from engines.transformer.scoring import fp32_logits  # the engine's scoring computes the same


@dataclass(frozen=True)
class Encoded:
    prompt: list[int]
    completion: list[int]


class Encoder:
    def __init__(self, tokenizer: Any, system_prompt: Callable[[str], str], max_tokens: int):
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.system_role = chat_prompt.supports_system_role(tokenizer)

    def __call__(self, prompt: str, completion: str, lang: str, cut: bool = False) -> Encoded:
        """A reply that was cut short gets no end-of-turn token: it did not end there."""
        chat = chat_prompt.messages(self.system_prompt(lang), [], prompt, self.system_role)
        prompt_ids = chat_prompt.encode(self.tokenizer, chat)
        reply = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        ending = [] if cut else [self.tokenizer.eos_token_id]
        reply = [*reply, *ending][: self.max_tokens // 2]
        keep = max(1, self.max_tokens - len(reply))
        return Encoded(prompt_ids[-keep:], reply)  # a long prompt loses its start


def collate(rows: list[Encoded], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask, and a mask of the completion tokens as labels
    (shifted: position t predicts token t+1)."""
    width = max(len(r.prompt) + len(r.completion) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, row in enumerate(rows):
        seq = row.prompt + row.completion
        ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        target[i, len(row.prompt) : len(seq)] = 1
    return {"input_ids": ids.to(device), "attention_mask": attention.to(device),
            "target": target.to(device)}


def token_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability of each next token, mask of completion tokens), both [rows, width-1].
    `model`: a causal LM, or a Policy (also inside DDP), whose forward gives the logits."""
    logps, mask, _ = token_logps_kl(model, None, batch)
    return logps, mask


def token_logps_kl(model: Any, reference: torch.Tensor | None, batch: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """token_logps, and each row's mean per-token KL(model || reference) of the whole next-token
    distributions at its completion tokens ([rows]; zeros without a reference). `reference`:
    the reference's log-probabilities there, from reference_log_probs."""
    ids, attention = batch["input_ids"], batch["attention_mask"]
    policy = isinstance(getattr(model, "module", model), Policy)
    logits = (model(ids, attention) if policy else fp32_logits(model, ids, attention))[:, :-1]
    labels = batch["input_ids"][:, 1:]
    log_all = logits.log_softmax(-1)
    logps = torch.gather(log_all, 2, labels.unsqueeze(-1)).squeeze(-1)
    mask = batch["target"][:, 1:]
    if reference is None:
        return logps, mask, torch.zeros(len(ids), device=logps.device)
    return logps, mask, mean_kl(log_all, reference, mask)


@torch.no_grad()
def reference_log_probs(reference: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The reference model's next-token log-probabilities at the completion tokens of the
    batch, [completion tokens, vocabulary] (a full vocabulary at every position is wasted)."""
    ids, attention = batch["input_ids"], batch["attention_mask"]
    log_q = fp32_logits(reference, ids, attention)[:, :-1].log_softmax(-1)
    return log_q[batch["target"][:, 1:].bool()]


def mean_kl(log_p: torch.Tensor, log_q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per row, the mean over its masked positions of KL(p || q) = sum_v p(v)(log p - log q);
    `log_q` holds the masked positions only, in order."""
    where = mask.bool()
    p = log_p[where]
    per_token = (p.exp() * (p - log_q)).sum(-1)
    kl = torch.zeros(mask.shape, dtype=per_token.dtype, device=mask.device)
    kl = kl.masked_scatter(where, per_token)
    return kl.sum(-1) / mask.sum(-1).clamp(min=1)


def completion_logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """log π(completion | prompt) per row: the sum over its tokens."""
    logps, mask = token_logps(model, batch)
    return (logps * mask).sum(-1)


def mean_token_logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The mean log-probability per completion token, per row (comparable across lengths)."""
    logps, mask = token_logps(model, batch)
    return (logps * mask).sum(-1) / mask.sum(-1).clamp(min=1)


class Policy(torch.nn.Module):
    """A causal LM as one module whose forward is fp32_logits: DDP must see every forward
    that gradients flow through, and fp32_logits calls the decoder and the head apart."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return fp32_logits(self.model, input_ids, attention_mask)
