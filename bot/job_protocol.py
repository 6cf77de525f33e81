"""What a fine-tuning job says, and how: one JSON object per line on its stdout. The job
(finetune/, a process of its own) writes these lines; the bot (bot/jobs.py) reads them and
relays them to the admin. Both import this module, so neither side guesses the other's names.

A training step is {"step", "total", "loss", "eta", "phase"}; everything else is an event,
{"event": NAME, ...}, with the fields its TypedDict below declares. The bot concludes a job
from its last DONE (or the first FAILED); the other events are progress.

Cheap to import: no torch, nothing of the bot's but this.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired, TypedDict

EXPORTED: Final = "exported"
TOO_FEW: Final = "too_few"
TRAINED: Final = "trained"
JUDGED: Final = "judged"
EVALUATED: Final = "evaluated"
PROMOTED: Final = "promoted"
ROLLED_BACK: Final = "rolled_back"
NOTHING_TO_ROLL_BACK: Final = "nothing_to_roll_back"
DONE: Final = "done"
FAILED: Final = "failed"


class Step(TypedDict):
    """One training step: its loss and an estimate of the seconds left."""

    step: int
    total: int
    loss: float
    eta: float
    phase: str  # "sft", "kto", "dpo"


class Exported(TypedDict):
    """The votes written out: rows per part (sft, kto, dpo, heldout, and the replies marked
    as cut or as the bot's own words), and what the privacy rules took out."""

    event: Literal["exported"]
    sft: int
    kto: int
    dpo: int
    heldout: int
    cut: NotRequired[int]  # voted replies the token cap cut short
    bot_words: NotRequired[int]  # voted replies in the bot's own words (never exported)
    scrubbed: int
    dropped: int
    privacy: dict[str, Any]


class TooFew(TypedDict):
    """Too few voted replies to train on: the job ends without an adapter."""

    event: Literal["too_few"]
    votes: int
    needed: int
    message: str


class Trained(TypedDict):
    event: Literal["trained"]
    adapter: str
    seconds: float


class Judged(TypedDict):
    """The sampled replies' distance from the base model, fluency and reward gain."""

    event: Literal["judged"]
    kl: float
    fluency: float
    reward_model: float | None
    gain: float | None


class Evaluated(TypedDict):
    """The verdict on the adapter, as its manifest keeps it under "evaluation"."""

    event: Literal["evaluated"]
    adapter: str
    promote: bool
    reason: str
    compared_with: str  # the adapter active when it was judged, or "base"
    new: dict[str, Any]  # the candidate's held-out scores: accuracy, accuracy_low, ...
    active: dict[str, Any]  # the same for the active adapter ({} for the base model)
    sampled: NotRequired[dict[str, Any]]  # with [finetune] gate_prompts: its replies judged
    reward_model: NotRequired[dict[str, Any]]
    decided_by: NotRequired[str]  # with sampled replies: "held-out votes", "sampled replies"
    votes_reason: NotRequired[str]  # or both (finetune/ruling.py); the votes' own verdict


class Promoted(TypedDict):
    event: Literal["promoted"]
    adapter: str


class RolledBack(TypedDict):
    event: Literal["rolled_back"]
    retired: str
    active: str  # an adapter id, or "base"


class NothingToRollBack(TypedDict):
    event: Literal["nothing_to_roll_back"]
    active: str
    message: str


class Done(TypedDict):
    """How the job ended: `adapter` is the one it trained ("" with too few votes), `promoted`
    whether the job made it the active one. The bot swaps in exactly this adapter."""

    event: Literal["done"]
    adapter: str
    promoted: bool
    reason: str
    accuracy: float | None


class Failed(TypedDict):
    """Why a process of the job failed, in one line (under a launcher each may say it)."""

    event: Literal["failed"]
    reason: str
    rank: int


# The verdict `evaluate` writes into the adapter's manifest and the store's metrics:
# {"evaluation": {"promote", "reason", "new": {"accuracy", "accuracy_low", ...}, ...}}.
def held_out_accuracy(metrics: dict[str, Any]) -> float | None:
    """The adapter's held-out accuracy from its metrics, if it was judged."""
    value = metrics.get("evaluation", {}).get("new", {}).get("accuracy")
    return value if isinstance(value, int | float) else None
