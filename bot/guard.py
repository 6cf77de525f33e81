"""The live guard on a promoted adapter: people in the chats have the last word.

A job promotes an adapter on held-out votes; the guard then watches its approval (share of 👍)
on the replies it made since its promotion, against the approval that the adapter it replaced
(or the base model) had earned on its replies until then. When the new one is liked less, by a
margin a one-sided test says chance would rarely give, the guard rolls it back on its own: the
store and the adapter's manifest say why, the transformer serves the one it replaced again, and
the admins hear of it in the chat where /retrain started the job (for a scheduled job: the log).

It counts people, not votes. Each person's approval is their own share of 👍, and the approval
of an adapter is the mean over the people who voted on it: someone who reacts thirty times
weighs what someone who reacts once does; no verdict is reached before `[finetune]
guard_min_people` people voted on the new adapter, and a drop must be clear even without the
person who liked it least. So one person can never roll an adapter back alone, and a burst of
one person's votes is not mistaken for many people's opinion (counted vote by vote, bursts of
honest voters' votes gave 12% mistaken rollbacks where 5% was promised: bench/guard.py).

Looking again after every vote would make a mistaken rollback ever likelier the longer an
adapter serves. So the guard judges at checkpoints, on the first `[finetune] guard_min_votes`
votes, then on the first 2x, 4x, 8x ... as many, and spends `guard_alpha` over them: half at
the first, a quarter at the second, and so on. By the union bound the chance that it ever rolls
back an adapter as good as the one it replaced is at most `guard_alpha`, however long it
serves (bench/guard.py measures it, and how many votes a real drop takes to catch). A
checkpoint's verdict depends on those first votes only, so how often it is asked changes
nothing.

It runs as a chore of the app every CHECK_SECONDS, not after each vote: it then sees every kind
of vote (reactions, buttons, /good and /bad, a vote changed or taken back), adds nothing to the
path of a vote, and a minute's delay is nothing against the dozens of votes a verdict needs.
Everything it judges by is in the store, so it carries on after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.adapters import ADAPTER_ENGINES, BASE
from bot.events import Sink, deliver
from bot.i18n import t

if TYPE_CHECKING:
    from bot.services import Services
    from bot.store import Store

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0


def drop_p_value(new: Sequence[float], old: Sequence[float]) -> float:
    """The one-sided p-value of "the new approval is lower than the old", each side given as
    the approvals of its people (each a share of 👍 in [0, 1], one number a person).

    People, not votes, are the units: one person's votes are alike (their taste), so counted
    vote by vote a burst would look like the agreement of many. The people on both sides are
    taken as one sample under the null hypothesis (no drop: they are exchangeable), and the
    difference of the two sides' means is judged against the spread of that sample, the normal
    approximation of the two-sample permutation test (E. J. G. Pitman, "Significance Tests Which
    May Be Applied to Samples from Any Populations", Supplement to the Journal of the Royal
    Statistical Society 4(1), 1937, 119-130):

        p = the mean approval of all people on both sides
        s2 = the mean of (approval - p)^2 over all people on both sides
        z = (mean(old) - mean(new)) / sqrt(s2 (1 / len(old) + 1 / len(new)))
        p-value = P(Z >= z) = erfc(z / sqrt 2) / 2,  Z standard normal.

    Where everyone voted once, s2 = p (1 - p) and this is the pooled two-proportion z-test on
    votes (NIST/SEMATECH e-Handbook of Statistical Methods, section 7.3.3).

    1.0 where there is nothing to compare (nobody on a side, or every approval the same)."""
    if not new or not old:
        return 1.0
    everyone = [*new, *old]
    pooled = sum(everyone) / len(everyone)
    s2 = sum((a - pooled) ** 2 for a in everyone) / len(everyone)
    spread = math.sqrt(s2 * (1 / len(old) + 1 / len(new)))
    if spread < 1e-12:
        return 1.0
    z = (sum(old) / len(old) - sum(new) / len(new)) / spread
    return math.erfc(z / math.sqrt(2)) / 2


def rollback_p_value(new: Sequence[float], old: Sequence[float]) -> float:
    """drop_p_value, and again without the person on the new side who liked it least: the
    larger of the two. A rollback then never hangs on one person's votes, however they voted
    (bench/guard.py: it halves mistaken rollbacks and costs little in catching real drops)."""
    harshest_left_out = sorted(new)[1:]
    return max(drop_p_value(new, old), drop_p_value(harshest_left_out, old))


@dataclass(frozen=True)
class Tally:
    """Votes person by person: each person's (👍, votes)."""

    people: tuple[tuple[int, int], ...] = ()

    @property
    def up(self) -> int:
        return sum(up for up, _ in self.people)

    @property
    def votes(self) -> int:
        return sum(votes for _, votes in self.people)

    def approvals(self) -> list[float]:
        """Each person's share of 👍: what the guard weighs, one number a person."""
        return [up / votes for up, votes in self.people]

    @property
    def approval(self) -> float:
        """The mean of the people's approvals (0 with nobody)."""
        return sum(self.approvals()) / len(self.people) if self.people else 0.0

    def __str__(self) -> str:
        """'12/20 👍 from 7 people (55%)': the votes, and the approval with each person once,
        as /adapters and the rollback reason write it."""
        if not self.people:
            return "no votes"
        return (f"{self.up}/{self.votes} 👍 from {len(self.people)} "
                f"{'person' if len(self.people) == 1 else 'people'} ({100 * self.approval:.0f}%)")


def checkpoint(votes: int, min_votes: int) -> int:
    """The checkpoints passed with this many votes, less one: -1 below `min_votes`, 0 from
    `min_votes`, 1 from twice as many, 2 from four times ..."""
    return (votes // min_votes).bit_length() - 1


def spent(passed: int, alpha: float) -> float:
    """The share of `alpha` spent at checkpoint `passed` (0, 1, 2 ...): half, a quarter ...,
    so that all of them together never spend more than `alpha`; 0 before the first."""
    return alpha / 2 ** (passed + 1) if passed >= 0 else 0.0


@dataclass(frozen=True)
class Standing:
    """The active adapter's live approval at its latest checkpoint against the approval of the
    one it replaced, as the guard judges it."""

    adapter: str
    replaced: str  # an adapter id, or BASE
    new: Tally  # the votes judged: those of the latest checkpoint passed (all before one)
    old: Tally
    p_value: float  # rollback_p_value's
    level: float  # the share of guard_alpha spent at this checkpoint; 0 before the first

    def worse(self, min_people: int) -> bool:
        """A checkpoint passed with at least `min_people` people on the new adapter, somebody
        on the replaced one, and a drop that chance would give less often than this
        checkpoint's share of guard_alpha."""
        return (len(self.new.people) >= min_people and bool(self.old.people)
                and self.p_value < self.level)

    @property
    def reason(self) -> str:
        """Why it was rolled back, in one line (stored, and written to its manifest)."""
        return (f"rolled back by the live guard: {self.new} since its promotion against"
                f" {self.old} for {self.replaced} (each person weighed once; one-sided test,"
                f" p = {self.p_value:.2g} < {self.level:.2g})")

    def summary(self) -> dict[str, object]:
        """What the store and the manifest keep of it."""
        return {"adapter": self.adapter, "replaced": self.replaced,
                "up_new": self.new.up, "votes_new": self.new.votes,
                "people_new": len(self.new.people), "approval_new": self.new.approval,
                "up_old": self.old.up, "votes_old": self.old.votes,
                "people_old": len(self.old.people), "approval_old": self.old.approval,
                "p_value": self.p_value, "level": self.level}


class Guard:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.store
        self.options = services.config.finetune
        self._tell: dict[str, tuple[Sink, str]] = {}  # adapter id -> (its job's chat, language)

    def tell_in(self, adapter_id: str, sink: Sink, lang: str) -> None:
        """Where to say it if `adapter_id` is rolled back: the chat that started its job (kept
        in memory; after a restart the log is told)."""
        self._tell[adapter_id] = (sink, lang)

    async def standing(self) -> Standing | None:
        """The active adapter's standing; None while the base model serves."""
        active = next((a for a in await self.store.adapters()
                       if a.status == "active" and not a.broken), None)  # broken: base serves
        if active is None or active.promoted_at is None:
            return None
        replaced = await self.store.replaced(active.id) or BASE
        since, min_votes = active.promoted_at, self.options.guard_min_votes
        new = await tally(self.store, active.id, replies_since=since)
        passed = checkpoint(new.votes, min_votes)
        if passed >= 0 and min_votes << passed != new.votes:  # judged on a checkpoint's votes
            new = await tally(self.store, active.id, replies_since=since,
                              first=min_votes << passed)
        old = await tally(self.store, replaced, votes_before=since)
        return Standing(active.id, replaced, new, old,
                        rollback_p_value(new.approvals(), old.approvals()),
                        spent(passed, self.options.guard_alpha))

    async def check(self) -> Standing | None:
        """Roll the active adapter back if the chats like it less; returns its standing when
        it was rolled back, else None."""
        standing = await self.standing()
        if standing is None or not standing.worse(self.options.guard_min_people):
            return None
        why = {"reason": standing.reason, "guard": standing.summary()}
        retired, active = await self.store.rollback(only=standing.adapter, why=why)
        if not retired:  # an admin promoted or rolled back meanwhile
            return None
        log.warning("adapter %s: %s", retired, standing.reason)
        self.services.adapters.note(retired, rolled_back={
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **why})
        if self.services.jobs is not None:
            await self.services.jobs.swap_in(active)
        await self._announce(standing)
        return standing

    async def _announce(self, standing: Standing) -> None:
        told = self._tell.pop(standing.adapter, None)
        if told is None:
            return
        sink, lang = told
        text = t(lang, "guard_rolled_back", adapter=standing.adapter, active=standing.replaced,
                 new=str(standing.new), old=str(standing.old), p=f"{standing.p_value:.2g}")
        await deliver(sink.another() or sink, text)

    async def watch(self, every: float = CHECK_SECONDS) -> None:
        """Check every `every` seconds, for as long as the bot runs (the app supervises it)."""
        while True:
            await asyncio.sleep(every)
            await self.check()


async def tally(store: Store, version: str, replies_since: float = 0.0,
                votes_before: float = math.inf, first: int = -1) -> Tally:
    """The votes on the replies of `version` (an adapter id or BASE), person by person, as
    Store.live_votes narrows them."""
    people = await store.live_votes(ADAPTER_ENGINES, version, replies_since, votes_before, first)
    return Tally(tuple((up, votes) for up, votes in people))
