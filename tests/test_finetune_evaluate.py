"""The promotion gate: pairwise preference accuracy, its confidence bound, and the verdicts."""

from __future__ import annotations

import pytest
import torch

from finetune.evaluate import accuracy_lower_bound, can_judge, gate, metrics, pairwise_accuracy


def test_accuracy_counts_pairs_where_the_liked_reply_earns_more_reward():
    reward = torch.tensor([3.0, 1.0, 2.0, 0.0])
    labels = torch.tensor([True, True, False, False])
    m = metrics(reward, torch.tensor([-1.0, -3.0, -9.0, -9.0]), labels, ["a", "b", "c", "d"])
    assert m["accuracy"] == 0.75  # 1 > 2 fails; 3 > 2, 3 > 0, 1 > 0 hold
    assert m["margin"] == 1.0 and m["liked_logp"] == -2.0
    assert m["accuracy_low"] < m["accuracy"]


def test_no_adapter_is_chance_and_ties_count_half():
    m = metrics(torch.zeros(4), torch.zeros(4), torch.tensor([True, False, True, False]),
                ["a", "b", "c", "d"])
    assert m["accuracy"] == 0.5 and m["margin"] == 0.0


def separable(prompts: int, per_prompt: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Liked replies earn more on average, with noise; `per_prompt` replies share a prompt."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(prompts * per_prompt) % 2 == 0
    reward = labels.float() + 1.5 * torch.randn(len(labels), generator=generator)
    return reward, labels, [f"p{i // per_prompt}" for i in range(len(labels))]


def test_the_lower_bound_tightens_with_more_prompts():
    few, many = separable(10, 2), separable(200, 2)
    assert accuracy_lower_bound(*few) < accuracy_lower_bound(*many) < pairwise_accuracy(*many[:2])


def test_replies_to_one_prompt_count_as_one_piece_of_evidence():
    reward, labels, _ = separable(40, 1)
    one_each = accuracy_lower_bound(reward, labels, [f"p{i}" for i in range(40)])
    same = accuracy_lower_bound(reward.repeat_interleave(4), labels.repeat_interleave(4),
                                [f"p{i}" for i in range(40) for _ in range(4)])
    assert same == pytest.approx(one_each, abs=0.03)  # four copies are no more sure than one


def _m(accuracy: float, low: float) -> dict:
    return {"accuracy": accuracy, "accuracy_low": low}


def test_the_gate_promotes_a_sure_improvement_and_says_why_it_rejects():
    assert gate(_m(0.8, 0.7), _m(0.5, 0.4), tolerance=0.02, min_accuracy=0.5).promote
    chance = gate(_m(0.56, 0.45), _m(0.5, 0.4), tolerance=0.02, min_accuracy=0.5)
    assert not chance.promote and "not surely above 0.50" in chance.reason
    worse = gate(_m(0.7, 0.6), _m(0.8, 0.7), tolerance=0.02, min_accuracy=0.5)
    assert not worse.promote and "worse than the active adapter's 0.80" in worse.reason
    assert gate(_m(0.79, 0.7), _m(0.8, 0.7), tolerance=0.02, min_accuracy=0.5).promote


def test_heldout_votes_of_one_kind_cannot_judge():
    assert can_judge([{"label": True}, {"label": True}])
    assert can_judge([{"label": True}, {"label": False}]) == ""
