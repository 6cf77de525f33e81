"""Our KTO and DPO losses equal the papers' formulas (as TRL computes them), worked out here
row by row with plain floats, on the same batch; and SFT is the mean token NLL."""

from __future__ import annotations

import math
import random

import pytest
import torch

from finetune.losses import dpo_loss, kto_loss, sft_loss


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def batch(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-40, -5) for _ in range(n)]


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_equals_the_formula(beta):
    pc, pr, rc, rr = (batch(6, s) for s in range(4))
    # Rafailov et al. 2023, eq. 7 (TRL loss_type="sigmoid"): mean of -log σ(β·Δ)
    expected = sum(
        -math.log(sigmoid(beta * ((pc[i] - rc[i]) - (pr[i] - rr[i])))) for i in range(6)
    ) / 6
    got = dpo_loss(*(torch.tensor(v, dtype=torch.float64) for v in (pc, pr, rc, rr)), beta)
    assert float(got) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("beta", "kl_shift"), [(0.1, 3.0), (0.3, -3.0)])
def test_kto_equals_the_formula(beta, kl_shift):
    policy, ref = batch(8, 10), batch(8, 11)
    labels = [True, False, True, True, False, False, True, False]
    ref_kl = batch(8, 12)
    noise = random.Random(13)
    policy_kl = [r + kl_shift + noise.uniform(-1, 1) for r in ref_kl]
    # Ethayarajh et al. 2024, eq. 8 with TRL's estimate: z = max(0, mean(πθ - πref) on
    # mismatched pairs); v = λD σ(β(r - z)) for liked, λU σ(β(z - r)) for disliked; loss 1 - v.
    z = max(0.0, sum(p - r for p, r in zip(policy_kl, ref_kl, strict=True)) / 8)
    per_row = [1 - sigmoid(beta * ((p - r) - z)) if good else 1 - sigmoid(beta * (z - (p - r)))
               for p, r, good in zip(policy, ref, labels, strict=True)]
    expected = sum(per_row) / 8
    tensors = [torch.tensor(v, dtype=torch.float64) for v in (policy, ref)]
    got = kto_loss(*tensors, torch.tensor(labels),
                   torch.tensor(policy_kl, dtype=torch.float64),
                   torch.tensor(ref_kl, dtype=torch.float64), beta)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert (z == 0.0) == (kl_shift < 0)  # both branches of the floor are exercised


def test_kto_weights_scale_each_side():
    policy, ref = torch.tensor([-5.0, -9.0]), torch.tensor([-6.0, -8.0])
    labels, kl = torch.tensor([True, False]), torch.zeros(2)
    plain = kto_loss(policy, ref, labels, kl, kl, 0.1)
    weighted = kto_loss(policy, ref, labels, kl, kl, 0.1, desirable_weight=2.0)
    liked = 1 - sigmoid(0.1 * 1.0)
    assert float(weighted - plain) == pytest.approx(liked / 2, rel=1e-6)


def test_kto_and_dpo_gradients_reach_only_the_policy_not_the_kl_estimate():
    policy = torch.tensor([-5.0, -7.0], requires_grad=True)
    policy_kl = torch.tensor([-4.0, -4.0], requires_grad=True)
    loss = kto_loss(policy, torch.tensor([-6.0, -6.0]), torch.tensor([True, False]),
                    policy_kl, torch.tensor([-6.0, -6.0]), 0.5)
    loss.backward()
    assert policy.grad.abs().sum() > 0 and policy_kl.grad is None


def test_sft_is_the_mean_negative_log_likelihood_of_the_completion_tokens():
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    assert float(sft_loss(logps, mask)) == pytest.approx((2 + 3 + 6) / 3)
