"""After each connect, what was addressed to the bot while it was away (down, draining or
disconnected): per channel it has spoken in, the channel's history after the last message
its inbox kept, read newest first up to [discord] catch_up_messages and answered oldest first.
A message older than [discord] catch_up_minutes is not answered (the conversation has moved
on) and is counted in the log; one the inbox kept before is not answered twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import discord

from bot.events import Incoming
from bot.frontends.discord_inbox import PLATFORM, DiscordInbox, key_of

log = logging.getLogger(__name__)

# A message addressed to the bot, as the frontend reads it; None for anything else.
Addressed = Callable[[discord.Message], Incoming | None]


class CatchUp:
    def __init__(self, client: discord.Client, inbox: DiscordInbox, addressed: Addressed,
                 minutes: float, most: int) -> None:
        self.client, self.inbox, self.addressed = client, inbox, addressed
        self.minutes, self.most = minutes, most
        self._lock = asyncio.Lock()  # two connects in a row: one catch-up after the other

    async def run(self) -> None:
        if self.most == 0 or self.minutes == 0:
            return
        async with self._lock:
            last = await self.inbox.router.last_kept(PLATFORM)
            since = discord.utils.utcnow() - dt.timedelta(minutes=self.minutes)
            for channel_id, last_id in last.items():
                try:
                    await self._channel(int(channel_id), last_id, since)
                except (discord.HTTPException, ValueError):  # gone, or no longer ours to read
                    log.warning("discord: no catch-up in channel %s", channel_id, exc_info=True)

    async def _channel(self, channel_id: int, last_id: int | None, since: dt.datetime) -> None:
        channel = await self._messageable(channel_id)
        after: Any = discord.Object(last_id) if last_id is not None else since
        read = [m async for m in channel.history(limit=self.most, after=after,
                                                 oldest_first=False)]
        answered = too_old = 0
        for message in reversed(read):  # oldest first: a chat's messages keep their order
            incoming = self.addressed(message)
            if incoming is None:
                continue
            fresh = message.created_at >= since
            if await self.inbox.take(incoming, answer=fresh):
                answered += fresh
                too_old += not fresh
                if not fresh:
                    await self.inbox.router.handled(
                        PLATFORM, key_of(incoming.chat_id, incoming.message_id))
        if answered or too_old:
            log.warning("discord: caught up in channel %s: %d message(s) to answer, %d older "
                        "than %g minutes not answered", channel_id, answered, too_old,
                        self.minutes)
        if len(read) == self.most:
            log.warning("discord: caught up on the newest %d messages of channel %s only",
                        self.most, channel_id)

    async def _messageable(self, channel_id: int) -> Any:
        """The channel as a guild channel or a DM: a message's `guild` tells the frontend which
        (a DM channel is not in the cache after a restart, so it is asked for)."""
        channel = self.client.get_channel(channel_id)
        return channel if channel is not None else await self.client.fetch_channel(channel_id)

