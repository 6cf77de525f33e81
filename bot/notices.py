"""What the bot's admins must hear of that no chat asked about (an adapter that cannot be
loaded, say): kept until the next chance, which is the next message a bot admin sends on any
platform; there each notice is sent once, as a message of its own after the answer.

Platform-neutral on purpose: a bot admin is a platform user id in [bot] admins, and the bot
knows no chat of theirs until they write.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.events import Incoming, Sink, deliver
from bot.i18n import t
from bot.policy import is_bot_admin

log = logging.getLogger(__name__)


class AdminNotices:
    def __init__(self) -> None:
        self._pending: dict[str, dict[str, Any]] = {}  # one per subject: the latest says it

    def add(self, subject: str, key: str, **values: Any) -> None:
        """A notice (locale `key` with `values`) about `subject`, replacing an earlier one."""
        self._pending[subject] = {"key": key, **values}

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def tell(self, incoming: Incoming, sink: Sink, bot: Any, lang: str) -> None:
        """Send what is pending to a bot admin, each once, after the answer `sink` gave."""
        if not self._pending or not is_bot_admin(incoming, bot):
            return
        more = sink.another()
        if more is None:  # a sink with one message only: it was the answer's; kept till later
            return
        pending, self._pending = self._pending, {}
        for notice in pending.values():
            values = dict(notice)
            await deliver(more, t(lang, values.pop("key"), **values))
            more = sink.another() or more  # a message of its own for the next one
