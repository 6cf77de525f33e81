"""The three objectives, on summed log-probabilities of completions (one value per row).

Written out from the papers (and as TRL computes them, so results compare):
  SFT  the mean negative log-likelihood of the liked replies' tokens.
  DPO  (Rafailov et al. 2023)  -log σ(β · ((log πθ(yw|x) - log πref(yw|x))
                                         - (log πθ(yl|x) - log πref(yl|x))))
  KTO  (Ethayarajh et al. 2024) with z = max(0, mean KL estimate), detached:
         liked:    1 - σ(β · (log πθ(y|x) - log πref(y|x) - z))
         disliked: 1 - σ(β · (z - (log πθ(y|x) - log πref(y|x))))
       The KL estimate uses mismatched pairs (x_i, y_j) from the same batch, as TRL does.
The *_rows functions give one loss per row, so that a batch spread over processes and
micro-batches can be summed in parts and divided by the whole batch's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sft_loss(token_logps: torch.Tensor, mask: torch.Tensor,
             tokens: int | None = None) -> torch.Tensor:
    """Mean NLL over the completion tokens (mask 1) of a batch; `tokens`: those of the whole
    batch when these rows are only a part of it."""
    count = mask.sum().clamp(min=1) if tokens is None else max(1, tokens)
    return -(token_logps * mask).sum() / count


def dpo_rows(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    return dpo_rows(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta).mean()


def kto_kl(policy_kl: torch.Tensor, ref_kl: torch.Tensor) -> torch.Tensor:
    """z: the batch's KL estimate, floored at 0 and kept out of the gradient."""
    return (policy_kl - ref_kl).mean().clamp(min=0).detach()


def kto_loss(
    policy: torch.Tensor,
    ref: torch.Tensor,
    labels: torch.Tensor,
    policy_kl: torch.Tensor,
    ref_kl: torch.Tensor,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> torch.Tensor:
    """labels: True for liked rows. The mean over all rows of the weighted per-row losses."""
    z = kto_kl(policy_kl, ref_kl)
    return kto_rows(policy, ref, labels, z, beta, desirable_weight, undesirable_weight).mean()


def kto_rows(policy: torch.Tensor, ref: torch.Tensor, labels: torch.Tensor, z: torch.Tensor,
             beta: float, desirable_weight: float, undesirable_weight: float) -> torch.Tensor:
    """Each row's weighted loss, given z (the whole batch's KL estimate, from kto_kl)."""
    ratio = policy - ref
    liked = desirable_weight * (1 - torch.sigmoid(beta * (ratio - z)))
    disliked = undesirable_weight * (1 - torch.sigmoid(beta * (z - ratio)))
    return torch.where(labels, liked, disliked)
