"""Compute budgets: what a person may make the engines do, in tokens scored or generated.

Each person has a bucket of [policy] budget_tokens that refills at budget_per_minute. A reply
is charged what its engine reports (the transformer and the remote engine count the prompt's
tokens and the reply's); where an engine counts none (ELIZA, the n-gram model) the text is
counted at about four characters a token. A request is served while the bucket holds at least
what it is known to cost (a reply: one token, since its length is known only afterwards; a
/probe: every continuation with its context), so one long reply may leave a debt that the
refill pays off before the next. Bot admins are never limited, as with rate_per_minute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from bot.config import BotOptions, PolicyOptions
from bot.events import Incoming
from bot.i18n import t
from bot.policy import is_bot_admin

CHARS_PER_TOKEN = 4  # what a text is counted as where no engine counted it


def estimate(text: str) -> int:
    """About how many tokens `text` is: one per four characters, at least one."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def reply_cost(trace: dict[str, Any], asked: str, answered: str) -> int:
    """The tokens a reply cost: the engine's own count (tokens_in + tokens_out in its trace)
    where it made one, else the question's and the answer's estimates."""
    counted = trace.get("tokens_in"), trace.get("tokens_out")
    if all(isinstance(n, int) for n in counted):
        return max(1, sum(counted))  # type: ignore[arg-type]
    return estimate(asked) + estimate(answered)


class Budgets:
    """One token bucket per person ("platform:user_id")."""

    MAX_KEYS = 10_000  # past this many people, those with a full bucket are forgotten

    def __init__(self, policy: PolicyOptions, bot: BotOptions,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = policy.budget_tokens  # 0: no budgets
        self.per_minute = policy.budget_per_minute
        self.bot = bot
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens left, when)

    def refusal(self, incoming: Incoming, lang: str, cost: int = 1) -> str | None:
        """None when this person may spend `cost` tokens now; else the line that says why
        not: more than a full budget, or not enough left yet (and when there will be)."""
        if self._exempt(incoming):
            return None
        if cost > self.capacity:
            return t(lang, "budget_too_big", cost=cost, limit=self.capacity)
        left = self.left(_key(incoming))
        if left >= cost:
            return None
        seconds = math.ceil((cost - left) * 60 / self.per_minute)
        return t(lang, "budget_spent", per_minute=self.per_minute, seconds=max(1, seconds))

    def spend(self, incoming: Incoming, lang: str, cost: int) -> str | None:
        """`refusal`, and when there is none, `charge` the cost at once (a cost known before
        the work: /probe's continuations, /next's text)."""
        refused = self.refusal(incoming, lang, cost)
        if refused is None:
            self.charge(incoming, cost)
        return refused

    def charge(self, incoming: Incoming, tokens: int) -> None:
        """Take `tokens` from this person's budget (it may go below zero: a debt)."""
        if self._exempt(incoming):
            return
        key = _key(incoming)
        self._buckets[key] = (self.left(key) - tokens, self._clock())
        if len(self._buckets) > self.MAX_KEYS:
            self._forget_full()

    def left(self, key: str) -> float:
        """The tokens `key` has now, refilled since it last spent."""
        tokens, since = self._buckets.get(key, (self.capacity, self._clock()))
        refilled = tokens + (self._clock() - since) * self.per_minute / 60
        return min(float(self.capacity), refilled)

    def _exempt(self, incoming: Incoming) -> bool:
        return self.capacity <= 0 or self.per_minute <= 0 or is_bot_admin(incoming, self.bot)

    def _forget_full(self) -> None:
        self._buckets = {k: v for k, v in self._buckets.items() if self.left(k) < self.capacity}


def _key(incoming: Incoming) -> str:
    return f"{incoming.platform}:{incoming.user_id}"
