"""What the router and the commands work with, handed over explicitly: one object per bot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.adapters import Adapters
from bot.budget import Budgets
from bot.config import Config
from bot.notices import AdminNotices
from bot.store import Chat, Store, User
from engines.registry import Engines

if TYPE_CHECKING:
    from bot.guard import Guard
    from bot.jobs import JobRunner


@dataclass
class Services:
    config: Config
    store: Store
    engines: Engines
    adapters: Adapters
    jobs: JobRunner | None = None  # fine-tuning jobs; None where the bot runs none
    guard: Guard | None = None  # the live guard on promoted adapters (bot/guard.py)
    notices: AdminNotices = field(default_factory=AdminNotices)  # for the bot's admins
    budgets: Budgets = field(init=False)  # compute per person ([policy] budget_*)

    def __post_init__(self) -> None:
        self.budgets = Budgets(self.config.policy, self.config.bot)

    def lang(self, chat: Chat) -> str:
        """The chat's language, or the configured default."""
        return chat.lang or self.config.bot.language

    def engine_name(self, chat: Chat) -> str:
        """The chat's engine, or the configured default."""
        return chat.engine or self.config.bot.default_engine

    def keeps_text(self, user: User) -> bool:
        """Whether this person's words (and the replies to them) may be stored."""
        return self.config.privacy.store_text and not user.opted_out
