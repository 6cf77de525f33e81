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
    # Engine state made from words that may not be stored (an opted-out person's, or with
    # store_text = false), by (chat id, engine): in memory only, the router's to keep and
    # /forget's to drop.
    unstored_state: dict[tuple[int, str], dict] = field(default_factory=dict)
    budgets: Budgets = field(init=False)  # compute per person ([policy] budget_*)

    def __post_init__(self) -> None:
        self.budgets = Budgets(self.config.policy, self.config.bot)

    def lang(self, chat: Chat) -> str:
        """The chat's language, or the configured default."""
        return chat.lang or self.config.bot.language

    def engine_name(self, chat: Chat) -> str:
        """The chat's engine, or the configured default."""
        return chat.engine or self.config.bot.default_engine

    def drop_unstored_state(self, chat_ids: list[int]) -> None:
        """Forget what engines remember, in memory, of these chats' unstored words."""
        for key in [key for key in self.unstored_state if key[0] in chat_ids]:
            del self.unstored_state[key]

    def keeps_text(self, user: User) -> bool:
        """Whether this person's words (and the replies to them) may be stored."""
        return self.config.privacy.store_text and not user.opted_out
