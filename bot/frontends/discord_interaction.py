"""How a slash command's answer is written: by editing the deferred response (and followups
past 2,000 characters) while the interaction's token lives, as normal channel messages after.

Discord accepts an interaction's token for 15 minutes. A command answered later than that (a
long /retrain's last words, or a command left over from before a restart, which has no live
interaction at all) is answered with normal messages in its channel; a message the token
wrote and can no longer edit is followed by a channel message that takes its place.
"""

from __future__ import annotations

import time
from typing import Any

import discord

TOKEN_LIFE = 15 * 60.0  # seconds Discord accepts an interaction's token
MARGIN = 30.0  # seconds: a request still under way as the token expires would fail too
NO_MENTIONS = discord.AllowedMentions.none()


class InteractionWrites:
    """`send` and `edit` for a StreamingSink; `interaction` None: channel messages only."""

    def __init__(self, interaction: discord.Interaction | None, channel: Any,
                 created_at: float) -> None:
        self.interaction, self.channel = interaction, channel
        self.expires = created_at + TOKEN_LIFE - MARGIN
        self._original = ""  # the id of the deferred response, once it shows text
        self._moved: dict[str, str] = {}  # a message the token wrote -> the one in its place

    def expired(self) -> bool:
        return self.interaction is None or time.time() > self.expires

    async def send(self, text: str) -> str:
        if self.expired():
            return await self._send_to_channel(text)
        assert self.interaction is not None  # for mypy: expired() checked it
        if not self._original:
            sent = await self.interaction.edit_original_response(
                content=text, allowed_mentions=NO_MENTIONS)
            self._original = str(sent.id)
            return self._original
        followed = await self.interaction.followup.send(text, wait=True,
                                                        allowed_mentions=NO_MENTIONS)
        return str(followed.id)

    async def edit(self, message_id: str, text: str) -> None:
        if message_id in self._moved:
            partial = self.channel.get_partial_message(int(self._moved[message_id]))
            await partial.edit(content=text, allowed_mentions=NO_MENTIONS)
        elif self.expired():
            self._moved[message_id] = await self._send_to_channel(text)
        elif message_id == self._original:
            await self.interaction.edit_original_response(  # type: ignore[union-attr]
                content=text, allowed_mentions=NO_MENTIONS)
        else:
            await self.interaction.followup.edit_message(  # type: ignore[union-attr]
                int(message_id), content=text, allowed_mentions=NO_MENTIONS)

    async def _send_to_channel(self, text: str) -> str:
        sent = await self.channel.send(text, allowed_mentions=NO_MENTIONS)
        return str(sent.id)
