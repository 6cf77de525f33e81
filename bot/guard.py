"""The live guard on a promoted adapter: people in the chats have the last word.

A job promotes an adapter on held-out votes; the guard then watches its approval (share of 👍)
on the replies it made since its promotion, against the approval that the adapter it replaced
(or the base model) had earned on its replies until then. When the new one is liked less, by a
margin a one-sided test says chance would rarely give, the guard rolls it back on its own: the
store and the adapter's manifest say why, the transformer serves the one it replaced again, and
the admins hear of it in the chat where /retrain started the job (for a scheduled job: the log).

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
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from bot.adapters import ADAPTER_ENGINES, BASE
from bot.events import Sink, deliver
from bot.i18n import t

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0


def drop_p_value(up_new: int, votes_new: int, up_old: int, votes_old: int) -> float:
    """The one-sided p-value of "the new approval is lower than the old", by the pooled
    two-proportion z-test (NIST/SEMATECH e-Handbook of Statistical Methods, section 7.3.3,
    https://www.itl.nist.gov/div898/handbook/prc/section3/prc33.htm):

        p = (x_old + x_new) / (n_old + n_new)
        z = (x_old / n_old - x_new / n_new) / sqrt(p (1 - p) (1 / n_old + 1 / n_new))
        p-value = P(Z >= z) = erfc(z / sqrt 2) / 2,  Z standard normal.

    1.0 where there is nothing to compare (no votes on a side, or every vote the same)."""
    if votes_new == 0 or votes_old == 0:
        return 1.0
    pooled = (up_old + up_new) / (votes_old + votes_new)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / votes_old + 1 / votes_new))
    if spread == 0:
        return 1.0
    z = (up_old / votes_old - up_new / votes_new) / spread
    return math.erfc(z / math.sqrt(2)) / 2


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
    up_new: int
    votes_new: int  # the votes judged: those of the latest checkpoint passed (all before one)
    up_old: int
    votes_old: int
    p_value: float
    level: float  # the share of guard_alpha spent at this checkpoint; 0 before the first

    def worse(self, min_votes: int) -> bool:
        """A checkpoint passed, enough votes for the replaced one, and a drop that chance would
        give less often than this checkpoint's share of guard_alpha."""
        return self.votes_old >= min_votes and self.p_value < self.level

    @property
    def reason(self) -> str:
        """Why it was rolled back, in one line (stored, and written to its manifest)."""
        return (f"rolled back by the live guard: {share(self.up_new, self.votes_new)} since its"
                f" promotion against {share(self.up_old, self.votes_old)} for {self.replaced}"
                f" (one-sided z-test, p = {self.p_value:.2g} < {self.level:.2g})")


def share(up: int, votes: int) -> str:
    """'12/20 👍 (60%)': the approval as /adapters and the rollback reason write it."""
    return f"{up}/{votes} 👍 ({100 * up / votes:.0f}%)" if votes else "no votes"


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
        up_new, votes_new = await self.store.live_votes(ADAPTER_ENGINES, active.id, since)
        passed = checkpoint(votes_new, min_votes)
        if passed >= 0 and min_votes << passed != votes_new:  # judged on a checkpoint's votes
            up_new, votes_new = await self.store.live_votes(
                ADAPTER_ENGINES, active.id, since, first=min_votes << passed)
        up_old, votes_old = await self.store.live_votes(ADAPTER_ENGINES, replaced,
                                                        votes_before=since)
        return Standing(active.id, replaced, up_new, votes_new, up_old, votes_old,
                        drop_p_value(up_new, votes_new, up_old, votes_old),
                        spent(passed, self.options.guard_alpha))

    async def check(self) -> Standing | None:
        """Roll the active adapter back if the chats like it less; returns its standing when
        it was rolled back, else None."""
        standing = await self.standing()
        if standing is None or not standing.worse(self.options.guard_min_votes):
            return None
        why = {"reason": standing.reason, "guard": asdict(standing)}
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
        another = getattr(sink, "another", None)
        text = t(lang, "guard_rolled_back", adapter=standing.adapter, active=standing.replaced,
                 new=share(standing.up_new, standing.votes_new),
                 old=share(standing.up_old, standing.votes_old), p=f"{standing.p_value:.2g}")
        await deliver(another() if another is not None else sink, text)

    async def watch(self, every: float = CHECK_SECONDS) -> None:
        """Check every `every` seconds, for as long as the bot runs (the app supervises it)."""
        while True:
            await asyncio.sleep(every)
            await self.check()
