"""LoRA training on the votes: SFT on the liked replies, then KTO (every vote) or DPO (pairs).

A loop you can read top to bottom, on one process or several (finetune/processes.py): each
step draws a global batch of `batch_size` rows (every process draws the same: one seeded
generator), each process takes its share of it (accelerate's split_between_processes) in
micro-batches, and computes that share's part of the batch's loss and its gradient; DDP
averages the gradients over the processes, AdamW steps the adapter weights, and the main
process reports {step, total, loss, eta}. The parts of all processes add up to the loss of
the whole batch, so 1 process or N, with or without accumulation, take the same step.
The reference model of KTO/DPO is the policy as it stands when that phase begins; its
log-probabilities are computed once, up front, each process a share of the rows.
A step whose loss or gradient is not finite stops the job (TrainingDiverged): one NaN step
would turn every LoRA weight NaN, and the adapter would be saved and judged as if it had learned.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from finetune import losses
from finetune.batches import (
    Encoded,
    Encoder,
    Policy,
    collate,
    completion_logps,
    reference_log_probs,
    token_logps_kl,
)
from finetune.export import Dataset
from finetune.progress import StepReporter


class TrainingDiverged(Exception):
    """A training step with a non-finite loss or gradient; the message says which step."""


@dataclass
class Phase:
    name: str
    steps: int
    rows: int


@dataclass(frozen=True)
class Batching:
    """How a global batch of `size` rows is spread: each process does `accumulation` passes
    of at most `micro` rows."""
    size: int
    micro: int
    accumulation: int

    @classmethod
    def plan(cls, size: int, micro: int, processes: int) -> Batching:
        micro = micro or math.ceil(size / processes)
        return cls(size, micro, math.ceil(size / (processes * micro)))


@dataclass
class TrainResult:
    curve: list[dict[str, Any]] = field(default_factory=list)  # {step, loss, phase}
    phases: list[Phase] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time (all its threads) in the loop
    tokens: int = 0  # prompt and reply tokens of every batch trained on, over all processes

    def final_loss(self, phase: str) -> float | None:
        values = [p["loss"] for p in self.curve if p["phase"] == phase]
        return values[-1] if values else None


@dataclass
class Objective:
    """One phase's loss, in parts: `begin` sees the step's whole batch (row indices, known to
    every process) and this process's micro-batches, and returns what every part needs (the
    batch's token count, KTO's KL estimate); `part` is the loss of some of the batch's rows
    as a share of the whole batch's loss; `tokens` counts the tokens of some rows."""
    rows: int
    begin: Callable[[list[int], list[list[int]]], Any]
    part: Callable[[list[int], Any], torch.Tensor]
    tokens: Callable[[list[int]], int]


class Trainer:
    def __init__(self, model: Any, encoder: Encoder, opts: Any, accelerator: Any) -> None:
        self.model = model  # the PEFT model: what is saved
        self.encode = encoder
        self.opts = opts
        self.accelerator = accelerator
        self.device = accelerator.device
        self.pad_id = encoder.tokenizer.pad_token_id
        self.rng = random.Random(opts.seed)
        self.batching = Batching.plan(opts.batch_size, opts.micro_batch_size,
                                      accelerator.num_processes)
        self.params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(self.params, lr=opts.learning_rate, weight_decay=0.0)
        # Passes with gradients go through DDP (self.policy); passes without them need no
        # collectives and take the plain module (self.frozen), the same weights.
        self.frozen = Policy(model)
        self.policy, self.optimizer = accelerator.prepare(self.frozen, optimizer)
        if self.device.type == "cuda":
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
        started, cpu_started, done = time.monotonic(), time.process_time(), 0
        for phase in result.phases:
            objective = self._objective(phase.name, data if phase.name == "sft" else preference[1])
            for _ in range(phase.steps):
                done += 1
                where = f"{phase.name.upper()} step {done} of {reporter.total}"
                loss, tokens = self._step(objective, where)
                result.tokens += tokens
                result.curve.append({"step": done, "loss": loss, "phase": phase.name})
                reporter.step(done, loss, phase.name)
        result.seconds = time.monotonic() - started
        result.cpu_seconds = time.process_time() - cpu_started
        self.model.eval()
        return result

    def _preference(self, data: Dataset) -> tuple[str, list[dict[str, Any]]]:
        if self.opts.preference == "dpo" and data.dpo:
            return "dpo", data.dpo
        return "kto", data.kto

    def _step(self, objective: Objective, where: str) -> tuple[float, int]:
        """One optimizer step: (the batch's loss, its tokens)."""
        self.policy.train()
        self.optimizer.zero_grad()
        batch = self.rng.sample(range(objective.rows), min(self.batching.size, objective.rows))
        micro_batches = self._my_micro_batches(batch)
        context = objective.begin(batch, micro_batches)
        mine = 0.0
        for i, rows in enumerate(micro_batches):
            last = i == len(micro_batches) - 1  # DDP averages the gradients once, at the end
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.policy):
                # A process without rows (a small batch, many processes) still makes a pass,
                # of weight 0: DDP's averaging waits for every process.
                loss = objective.part(rows or batch[:1], context) * (1 if rows else 0)
                # DDP averages over the processes; the parts are meant to be summed.
                self.accelerator.backward(loss * self.accelerator.num_processes)
            mine += float(loss.detach())
        value = float(self.accelerator.reduce(torch.tensor(mine, device=self.device), "sum"))
        if not math.isfinite(value):
            raise TrainingDiverged(f"training stopped at {where}: the loss is {value}; "
                                   f"no adapter was saved ({self._hint()})")
        norm = self.accelerator.clip_grad_norm_(self.params, 1.0)
        if not math.isfinite(float(norm)):
            raise TrainingDiverged(f"training stopped at {where}: a gradient is not finite; "
                                   f"no adapter was saved ({self._hint()})")
        self.optimizer.step()
        return value, objective.tokens(batch)

    def _my_micro_batches(self, batch: list[int]) -> list[list[int]]:
        """This process's share of the batch, in `accumulation` nearly equal parts."""
        with self.accelerator.split_between_processes(batch) as mine:
            mine = list(mine)
        parts = self.batching.accumulation
        return [mine[len(mine) * i // parts : len(mine) * (i + 1) // parts] for i in range(parts)]

    def _hint(self) -> str:
        if self.device.type == "cuda":
            return "try [finetune] device = \"cpu\", or a lower learning_rate"
        return "try a lower [finetune] learning_rate"

    def _objective(self, name: str, rows: Any) -> Objective:
        if name == "sft":
            return self._sft(rows.sft)
        return self._kto(rows) if name == "kto" else self._dpo(rows)

    def _collate(self, encoded: list[Encoded]) -> dict[str, torch.Tensor]:
        return collate(encoded, self.pad_id, self.device)

    def _pass(self, encoded: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The policy's (token log-probabilities, completion mask, KL term of these rows): the
        term is kl_weight x each row's mean per-token KL from the base model, summed. It holds
        the adapter near the model it started from on the very contexts it trains on (the
        votes' replies), the penalty RLHF puts beside its reward; without it the preference
        losses can widen the margin by making every reply unlikely (issue 32)."""
        batch = self._collate(encoded)
        reference = None
        if self.opts.kl_weight:
            with self.model.disable_adapter():
                reference = reference_log_probs(self.model, batch)
        logps, mask, kl = token_logps_kl(self.policy, reference, batch)
        return logps, mask, self.opts.kl_weight * kl.sum()

    # SFT ------------------------------------------------------------------------------------

    def _sft(self, rows: list[dict[str, Any]]) -> Objective:
        encoded = [self.encode(r["prompt"], r["completion"], r["lang"], r.get("cut", False))
                   for r in rows]

        def reply_tokens(batch: list[int], _: list[list[int]]) -> int:  # a mean per token
            return sum(len(encoded[i].completion) for i in batch)

        def part(pick: list[int], batch_tokens: int) -> torch.Tensor:
            logps, mask, kl = self._pass([encoded[i] for i in pick])
            return losses.sft_loss(logps, mask, batch_tokens) + kl / self._batch_rows(len(rows))

        return Objective(len(rows), reply_tokens, part, lambda pick: length(encoded, pick))

    # KTO ------------------------------------------------------------------------------------

    def _kto(self, rows: list[dict[str, Any]]) -> Objective:
        encoded = [self.encode(r["prompt"], r["completion"], r["lang"], r.get("cut", False))
                   for r in rows]
        # KL estimate: each prompt with the next row's reply (a mismatched pair).
        mismatched = [Encoded(e.prompt, encoded[(i + 1) % len(encoded)].completion)
                      for i, e in enumerate(encoded)]
        ref = self._reference(encoded)
        ref_kl = self._reference(mismatched)
        labels = torch.tensor([bool(r["label"]) for r in rows], device=self.device)
        liked_weight, disliked_weight = balance(int(labels.sum()), len(rows) - int(labels.sum()))

        @torch.no_grad()
        def kl_estimate(batch: list[int], micro_batches: list[list[int]]) -> torch.Tensor:
            """z over the whole batch: each process sums its rows, the sums are added up
            (TRL gathers the KL terms of all processes the same way)."""
            mine = torch.zeros((), device=self.device)
            for pick in filter(None, micro_batches):
                with self.accelerator.autocast():
                    policy_kl = completion_logps(self.frozen,
                                                 self._collate([mismatched[i] for i in pick]))
                mine += (policy_kl - ref_kl[pick]).sum()
            total = self.accelerator.reduce(mine, "sum")
            return (total / len(batch)).clamp(min=0)

        def part(pick: list[int], z: torch.Tensor) -> torch.Tensor:
            logps, mask, kl = self._pass([encoded[i] for i in pick])
            each = losses.kto_rows((logps * mask).sum(-1), ref[pick], labels[pick], z,
                                   self.opts.beta, liked_weight, disliked_weight)
            return (each.sum() + kl) / self._batch_rows(len(rows))

        return Objective(len(rows), kl_estimate, part, lambda pick: length(encoded, pick))

    # DPO ------------------------------------------------------------------------------------

    def _dpo(self, pairs: list[dict[str, Any]]) -> Objective:
        chosen = [self.encode(p["prompt"], p["chosen"], p["lang"], p.get("chosen_cut", False))
                  for p in pairs]
        rejected = [self.encode(p["prompt"], p["rejected"], p["lang"],
                                p.get("rejected_cut", False)) for p in pairs]
        ref_chosen, ref_rejected = self._reference(chosen), self._reference(rejected)

        def part(pick: list[int], _: Any) -> torch.Tensor:
            logps, mask, kl = self._pass([chosen[i] for i in pick] + [rejected[i] for i in pick])
            policy, n = (logps * mask).sum(-1), len(pick)
            each = losses.dpo_rows(policy[:n], policy[n:], ref_chosen[pick], ref_rejected[pick],
                                   self.opts.beta)
            return (each.sum() + kl / 2) / self._batch_rows(len(pairs))  # kl: two rows a pair

        return Objective(len(pairs), lambda batch, mine: None, part,
                         lambda pick: length(chosen, pick) + length(rejected, pick))

    def _batch_rows(self, available: int) -> int:
        return min(self.batching.size, available)

    @torch.no_grad()
    def _reference(self, encoded: list[Encoded]) -> torch.Tensor:
        """log π_ref of each row, with the policy as it is now (frozen: computed once); each
        process computes a share of the rows, and every process gets them all, in order."""
        from accelerate.utils import gather_object

        self.frozen.eval()
        size = max(1, self.batching.micro)
        with self.accelerator.split_between_processes(encoded) as mine:
            values = []
            for i in range(0, len(mine), size):
                with self.accelerator.autocast():
                    part = completion_logps(self.frozen, self._collate(mine[i : i + size]))
                values += part.float().tolist()
        return torch.tensor(gather_object(values), device=self.device)


def length(encoded: list[Encoded], pick: list[int]) -> int:
    return sum(len(encoded[i].prompt) + len(encoded[i].completion) for i in pick)


def balance(liked: int, disliked: int) -> tuple[float, float]:
    """KTO's weights (λD, λU) so that λD·liked = λU·disliked, as the paper advises (its ratio
    in [1, 4/3]): without them a chat that dislikes most replies teaches the adapter only to
    make every reply less likely."""
    if liked == 0 or disliked == 0:
        return 1.0, 1.0
    return max(1.0, disliked / liked), max(1.0, liked / disliked)
