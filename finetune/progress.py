"""The job's voice: one JSON object per line on stdout, which the bot relays to the admin.

{"step", "total", "loss", "eta", "phase"} while training; {"event": ...} for everything else,
each as bot/job_protocol.py declares it (the bot reads them by those names). Free text goes to
stderr (the bot logs it).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from bot import job_protocol as said
from finetune import processes


def emit(line: Mapping[str, Any]) -> None:
    """One line, from the main process only (a launcher starts several)."""
    if processes.is_main():
        emit_from_any(line)


def emit_from_any(line: Mapping[str, Any]) -> None:
    """One line from whichever process says it (each may have its own reason to fail)."""
    print(json.dumps(line, ensure_ascii=False), flush=True)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class StepReporter:
    """Reports each training step with a loss and an estimate of the seconds left."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()

    def step(self, step: int, loss: float, phase: str) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / step * (self.total - step) if step else 0.0
        emit(said.Step(step=step, total=self.total, loss=round(loss, 4), eta=round(eta, 1),
                       phase=phase))
