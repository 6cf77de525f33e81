"""LoRA training on the votes: SFT on the liked replies, then KTO (every vote) or DPO (pairs).

A loop you can read top to bottom: sample a batch, compute the loss, step AdamW on the adapter
weights, report {step, total, loss, eta}. The reference model of KTO/DPO is the policy as it
stands when that phase begins; its log-probabilities are computed once, up front.
A step whose loss or gradient is not finite stops the job (TrainingDiverged): one NaN step
would turn every LoRA weight NaN, and the adapter would be saved and judged as if it had learned.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from finetune import losses
from finetune.batches import Encoded, Encoder, collate, completion_logps, token_logps
from finetune.export import Dataset
from finetune.progress import StepReporter


class TrainingDiverged(Exception):
    """A training step with a non-finite loss or gradient; the message says which step."""


@dataclass
class Phase:
    name: str
    steps: int
    rows: int


@dataclass
class TrainResult:
    curve: list[dict[str, Any]] = field(default_factory=list)  # {step, loss, phase}
    phases: list[Phase] = field(default_factory=list)
    seconds: float = 0.0

    def final_loss(self, phase: str) -> float | None:
        values = [p["loss"] for p in self.curve if p["phase"] == phase]
        return values[-1] if values else None


class Trainer:
    def __init__(self, model: Any, encoder: Encoder, opts: Any, device: str) -> None:
        self.model = model
        self.encode = encoder
        self.opts = opts
        self.device = device
        self.pad_id = encoder.tokenizer.pad_token_id
        self.rng = random.Random(opts.seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=opts.learning_rate, weight_decay=0.0)
        if device.startswith("cuda"):
            # cuDNN's attention backward has given NaN gradients with explicit masks (torch
            # 2.13, H100/H200); the flash and memory-efficient kernels remain for training
            torch.backends.cuda.enable_cudnn_sdp(False)

    def run(self, data: Dataset) -> TrainResult:
        result = TrainResult()
        preference = self._preference(data)
        plan = [("sft", self.opts.sft_steps if data.sft else 0, len(data.sft)),
                (preference[0], self.opts.preference_steps if preference[1] else 0,
                 len(preference[1]))]
        result.phases = [Phase(*p) for p in plan if p[1]]
        reporter = StepReporter(sum(p.steps for p in result.phases))
        started, done = time.monotonic(), 0
        for phase in result.phases:
            step_fn = self._phase_step(phase.name, data if phase.name == "sft" else preference[1])
            for _ in range(phase.steps):
                done += 1
                loss = self._step(step_fn, f"{phase.name.upper()} step {done} of {reporter.total}")
                result.curve.append({"step": done, "loss": loss, "phase": phase.name})
                reporter.step(done, loss, phase.name)
        result.seconds = time.monotonic() - started
        self.model.eval()
        return result

    def _preference(self, data: Dataset) -> tuple[str, list[dict[str, Any]]]:
        if self.opts.preference == "dpo" and data.dpo:
            return "dpo", data.dpo
        return "kto", data.kto

    def _step(self, step_fn: Callable[[], torch.Tensor], where: str) -> float:
        self.model.train()
        loss = step_fn()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(f"training stopped at {where}: the loss is {value}; "
                                   f"no adapter was saved ({self._hint()})")
        self.optimizer.zero_grad()
        loss.backward()
        try:
            torch.nn.utils.clip_grad_norm_(self.params, 1.0, error_if_nonfinite=True)
        except RuntimeError:
            raise TrainingDiverged(f"training stopped at {where}: a gradient is not finite; "
                                   f"no adapter was saved ({self._hint()})") from None
        self.optimizer.step()
        return value

    def _hint(self) -> str:
        if self.device.startswith("cuda"):
            return "try [finetune] device = \"cpu\", or a lower learning_rate"
        return "try a lower [finetune] learning_rate"

    def _phase_step(self, name: str, rows: Any) -> Callable[[], torch.Tensor]:
        if name == "sft":
            return self._sft(rows.sft)
        return self._kto(rows) if name == "kto" else self._dpo(rows)

    def _batch(self, items: list[Any]) -> list[Any]:
        size = min(self.opts.batch_size, len(items))
        return self.rng.sample(items, size)

    def _collate(self, encoded: list[Encoded]) -> dict[str, torch.Tensor]:
        return collate(encoded, self.pad_id, self.device)

    # SFT ------------------------------------------------------------------------------------

    def _sft(self, rows: list[dict[str, Any]]) -> Callable[[], torch.Tensor]:
        encoded = [self.encode(r["prompt"], r["completion"], r["lang"]) for r in rows]

        def step() -> torch.Tensor:
            logps, mask = token_logps(self.model, self._collate(self._batch(encoded)))
            return losses.sft_loss(logps, mask)

        return step

    # KTO ------------------------------------------------------------------------------------

    def _kto(self, rows: list[dict[str, Any]]) -> Callable[[], torch.Tensor]:
        encoded = [self.encode(r["prompt"], r["completion"], r["lang"]) for r in rows]
        # KL estimate: each prompt with the next row's reply (a mismatched pair).
        mismatched = [Encoded(e.prompt, encoded[(i + 1) % len(encoded)].completion)
                      for i, e in enumerate(encoded)]
        ref = self._reference(encoded)
        ref_kl = self._reference(mismatched)
        labels = torch.tensor([bool(r["label"]) for r in rows], device=self.device)
        liked_weight, disliked_weight = balance(int(labels.sum()), len(rows) - int(labels.sum()))
        index = list(range(len(rows)))

        def step() -> torch.Tensor:
            pick = self._batch(index)
            policy = completion_logps(self.model, self._collate([encoded[i] for i in pick]))
            with torch.no_grad():
                policy_kl = completion_logps(self.model,
                                             self._collate([mismatched[i] for i in pick]))
            return losses.kto_loss(policy, ref[pick], labels[pick], policy_kl, ref_kl[pick],
                                   self.opts.beta, liked_weight, disliked_weight)

        return step

    # DPO ------------------------------------------------------------------------------------

    def _dpo(self, pairs: list[dict[str, Any]]) -> Callable[[], torch.Tensor]:
        chosen = [self.encode(p["prompt"], p["chosen"], p["lang"]) for p in pairs]
        rejected = [self.encode(p["prompt"], p["rejected"], p["lang"]) for p in pairs]
        ref_chosen, ref_rejected = self._reference(chosen), self._reference(rejected)
        index = list(range(len(pairs)))

        def step() -> torch.Tensor:
            pick = self._batch(index)
            both = self._collate([chosen[i] for i in pick] + [rejected[i] for i in pick])
            policy = completion_logps(self.model, both)
            n = len(pick)
            return losses.dpo_loss(policy[:n], policy[n:], ref_chosen[pick], ref_rejected[pick],
                                   self.opts.beta)

        return step

    @torch.no_grad()
    def _reference(self, encoded: list[Encoded]) -> torch.Tensor:
        """log π_ref of each row, with the policy as it is now (frozen: computed once)."""
        self.model.eval()
        size = max(1, self.opts.batch_size)
        parts = [completion_logps(self.model, self._collate(encoded[i : i + size]))
                 for i in range(0, len(encoded), size)]
        return torch.cat(parts) if parts else torch.zeros(0, device=self.device)


def balance(liked: int, disliked: int) -> tuple[float, float]:
    """KTO's weights (λD, λU) so that λD·liked = λU·disliked, as the paper advises (its ratio
    in [1, 4/3]): without them a chat that dislikes most replies teaches the adapter only to
    make every reply less likely."""
    if liked == 0 or disliked == 0:
        return 1.0, 1.0
    return max(1.0, disliked / liked), max(1.0, liked / disliked)
