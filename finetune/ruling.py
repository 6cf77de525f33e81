"""The gate's ruling when its two kinds of evidence disagree.

The held-out votes judge an adapter by DPO's implicit reward (finetune/evaluate.py): does its
per-token log-ratio to the base model rank the liked held-out replies above the disliked ones?
The sampled replies (finetune/judge.py) judge what users will see: the adapter's own replies to
held-out prompts, against the base model's, under a reward model trained on the votes.

They can disagree. On SmolLM2-135M (issue 32, seed 0, the "addresses the person" taste) the
adapter raised the rater's approval on unseen prompts by 35 points, its replies won under a
reward model that ranked 86% of the held-out votes right, fluency 1.43x and KL 0.27 — and the
implicit reward ranked the held-out votes at chance (0.50): a few KL-anchored steps move the
log-ratio of *other* replies (the votes were on the base model's replies) too little to rank
them, while what the adapter itself writes changed. The votes were unsure, not against it.

So, in this order:
1. Its language first: fluency above `max_fluency_ratio` or KL above `max_kl` refuses, whatever
   else says yes (that is the news: the reward hacking the KL term is there to stop).
2. Held-out votes passed: the sampled replies must agree (a trusted reward model, a paired
   reward gain surely above 0) — as before.
3. Held-out votes refused: the reward model may stand in for them only if it passes the bar the
   votes had to pass, on its own held-out pair accuracy: a 95% lower bound of at least
   `min_accuracy` (not merely above 0.5), on at least `reward_min_heldout` votes — and only if
   the votes were unsure rather than against: an adapter ranking the held-out votes `tolerance`
   worse than the active adapter (the base model: 0.5, chance) stays refused. Then the sampled
   replies decide (reward gain surely above 0) and the vote accuracy is reported in the reason.
   A reward model fitted to a coin's votes ranks held-out votes near chance: now and then above
   0.5 by luck (trusted), not up to `min_accuracy`, so a random rater's adapter has no stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finetune import judge
from finetune.evaluate import Decision, worse_than_active

VOTES = "held-out votes"
SAMPLED = "sampled replies"
BOTH = "held-out votes and sampled replies"


@dataclass(frozen=True)
class Ruling:
    promote: bool
    reason: str
    decided_by: str  # VOTES, SAMPLED or BOTH: which evidence the verdict rests on


def rule(votes: Decision, scored: dict[str, Any], judged: dict[str, Any], opts: Any) -> Ruling:
    """The verdict from the held-out votes' decision (`scored`: their figures for "new" and
    "active") and the sampled replies (`judged`: {"sampled", "reward_model"})."""
    sampled, check = judged["sampled"], judged["reward_model"]
    language = judge.language_refusal(sampled, opts)
    if language:
        return Ruling(False, language, SAMPLED)
    if votes.promote:
        refused = judge.reward_refusal(sampled, check, opts)
        if refused:
            return Ruling(False, refused, SAMPLED)
        return Ruling(True, f"{votes.reason}; {summary(sampled)}", BOTH)
    if not stands_in(check, opts):
        return Ruling(False, votes.reason, VOTES)
    new, active = scored["new"]["accuracy"], scored["active"]["accuracy"]
    if worse_than_active(scored["new"], scored["active"], opts.tolerance):
        return Ruling(False, f"held-out preference accuracy {new:.2f} is worse than the active "
                             f"adapter's {active:.2f}: the votes are against it, not unsure", VOTES)
    refused = judge.reward_refusal(sampled, check, opts)
    if refused:
        return Ruling(False, f"{refused}; and the {votes.reason}", SAMPLED)
    return Ruling(True, f"{summary(sampled)}, under a reward model that ranks "
                        f"{check['accuracy']:.2f} of {check['heldout']} held-out votes right "
                        f"(95% lower bound {check['accuracy_low']:.2f}); the held-out votes "
                        f"alone were unsure: {votes.reason}", SAMPLED)


def stands_in(check: dict[str, Any], opts: Any) -> bool:
    """May the reward model speak for the held-out votes? Trusted, and surely right on at least
    `min_accuracy` of its held-out pairs: the bar an adapter's votes must pass."""
    low = check.get("accuracy_low")
    return bool(check.get("trusted")) and low is not None and low >= opts.min_accuracy


def summary(sampled: dict[str, Any]) -> str:
    gain = sampled["reward"]
    return (f"its replies: reward {gain['gain']:+.2f} [{gain['gain_low']:+.2f}, "
            f"{gain['gain_high']:+.2f}] over the base model's, fluency {sampled['fluency']:.2f}x, "
            f"KL {sampled['kl']:.2f}")
