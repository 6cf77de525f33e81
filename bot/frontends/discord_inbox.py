"""Discord's durable inbox: what was addressed to the bot is kept before it is answered.

Discord does not redeliver what a bot missed, so the bot keeps, in the store's inbox, each
message addressed to it (and each slash command) as the `Incoming` it became, before the
router sees it; the ids of the messages its answer sends are kept as soon as Discord names
them; and the record is marked handled when the answer is done. After a restart, what was
kept and not handled is answered again, editing what the earlier run had sent (a reply frozen
mid-stream gets its final text), and a message delivered twice (live and by a catch-up,
discord_catchup.py) is answered once: the inbox's key is "channel:message id".
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot import logs
from bot.events import Incoming

if TYPE_CHECKING:
    from bot.router import Router

log = logging.getLogger(__name__)
PLATFORM = "discord"


@dataclass(frozen=True)
class Kept:
    """One message (or slash command) to answer, with what an earlier run sent for it."""

    key: str
    incoming: Incoming
    received_at: float
    sent: tuple[str, ...] = ()  # ids of messages that show (part of) the answer already
    interaction: dict[str, Any] | None = None  # a slash command's id, token and application

    @property
    def resumed(self) -> bool:
        return self.incoming.redelivered


def key_of(channel_id: str, message_id: str) -> str:
    return f"{channel_id}:{message_id}"


def payload_of(incoming: Incoming, interaction: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"incoming": dataclasses.asdict(incoming)}
    if interaction is not None:
        payload["interaction"] = interaction
    return payload


def incoming_of(payload: dict[str, Any]) -> Incoming:
    """The Incoming kept before a restart, marked redelivered (fields a later version of the
    bot no longer has are dropped; new ones take their defaults)."""
    known = {f.name for f in dataclasses.fields(Incoming)}
    fields = {k: v for k, v in payload["incoming"].items() if k in known}
    return Incoming(**(fields | {"redelivered": True}))


Answer = Callable[[Kept], Awaitable[bool]]  # False: not taken (the bot is stopping)


class DiscordInbox:
    """Keeps, answers in a task of its own, and marks handled; `answer` is the frontend's."""

    def __init__(self, router: Router, answer: Answer) -> None:
        self.router = router
        self._answer = answer
        self._tasks: set[asyncio.Task] = set()

    async def take(self, incoming: Incoming, interaction: dict[str, Any] | None = None,
                   answer: bool = True) -> bool:
        """Keep `incoming` and (if `answer`) answer it; False if it was kept before."""
        key = key_of(incoming.chat_id, incoming.message_id)
        if not await self.router.received(PLATFORM, key, payload_of(incoming, interaction)):
            return False
        if answer:
            self.spawn(Kept(key, incoming, time.time(), interaction=interaction))
        return True

    def spawn(self, kept: Kept) -> None:
        task = asyncio.create_task(self._answered(kept), name=f"discord-{kept.key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answered(self, kept: Kept) -> None:
        with logs.fields(chat=f"discord:{kept.incoming.chat_id}"):
            try:
                if not await self._answer(kept):
                    return  # the bot is stopping: answered after the restart
            except Exception:  # a reply that cannot be delivered must not end the bot
                log.exception("discord: could not answer")
            # answered, or failed for good: either way not again. A task cancelled at
            # shutdown never gets here either.
            await self.router.handled(PLATFORM, kept.key)

    def recorder(self, key: str) -> Callable[[list[str]], Awaitable[None]]:
        """What a sink calls with the ids of its messages, as soon as Discord names them."""
        async def sent(ids: list[str]) -> None:
            await self.router.replying(PLATFORM, key, ids)
        return sent

    async def left_over(self) -> list[Kept]:
        """What an earlier run kept and did not finish, oldest first."""
        return [Kept(r.key, incoming_of(r.payload), r.received_at, tuple(r.reply_ids),
                     r.payload.get("interaction"))
                for r in await self.router.unhandled(PLATFORM) if "incoming" in r.payload]

    async def stop(self) -> None:
        """The app has drained the router: these are done, or idle until the restart."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
