"""The Discord frontend under test: the real discord.py client against the fake Discord
(tests/fake_discord.py), its people, and a bot running with the real router and store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bot.app import App
from bot.frontends.discord import DiscordFrontend
from tests.bot_process import BotProcess
from tests.fake_discord import BOT_CHANNEL_ID, BOT_ID, BOT_USER, FakeDiscord, SentMessage, user
from tests.harness import frontend_running, make_config, votes_on

ALICE = user("11", "Alice")
BOB = user("12", "Bob")
MOD = user("13", "Mo")  # gets the "mods" role, which has Manage Server, in messages
OTHER_BOT = user("50", "Robo", bot=True)
DM_CHANNEL_ID = "4000"
MESSAGE_CONTENT_INTENT = 1 << 15


@dataclass
class Bot:
    fake: FakeDiscord
    router: Any
    frontend: DiscordFrontend

    async def mention(self, text: str, author: dict = ALICE, **kw: Any) -> SentMessage:
        """Say "@bot text" in #general; the bot's reply once the router is done with it."""
        message_id = await self.fake.message(
            f"<@{BOT_ID}> {text}", author=author, mentions=[BOT_USER], **kw
        )
        return await self.reply_to(message_id)

    async def reply_to(self, message_id: str) -> SentMessage:
        reply = await self.fake.until(lambda: self.fake.replies_to(message_id))
        await self.router.settle(10)
        return reply[0]

    async def command(self, command: str, /, author: dict = ALICE, **kw: Any) -> SentMessage:
        token = await self.fake.slash(command, author=author, **kw)
        await self.fake.until(lambda: self.fake.answer(token))
        await self.router.settle(10)
        return self.fake.answer(token)

    async def stored_votes(self, reply: SentMessage) -> list[tuple[str, int]]:
        store = self.router.store
        chat = await store.find_chat("discord", reply.channel_id)
        return await votes_on(store, await store.reply_for(chat, reply.id))


def make_app(tmp_path, fake: FakeDiscord, body: str = "", **discord: Any) -> App:
    """An App with the Discord frontend pointed at `fake`; `body` goes into [bot]."""
    options = {"api_base": fake.api_base, "gateway_url": fake.gateway_url,
               "channels": [BOT_CHANNEL_ID]} | discord
    body += '\n[policy]\nrate_per_minute = 0\n[discord]\n'
    body += "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    return App(make_config(tmp_path, body), ["discord"], env={"DISCORD_TOKEN": "fake-token"})


@contextlib.asynccontextmanager
async def running(tmp_path, body: str = "", **discord: Any):
    """The bot on the fake Discord; `body` goes into [bot], `discord` into [discord]."""
    fake = await FakeDiscord().start()
    app = make_app(tmp_path, fake, body, **discord)
    try:
        async with frontend_running(app) as (router, frontend):
            await fake.until(lambda: fake.guild_sent)
            yield Bot(fake, router, frontend)
    finally:
        await fake.close()


@contextlib.asynccontextmanager
async def process(tmp_path) -> AsyncIterator[tuple[FakeDiscord, BotProcess]]:
    """`python -m bot discord` on the fake Discord (not started yet), killed at the end."""
    fake = await FakeDiscord().start()
    table = (f'api_base = "{fake.api_base}"\ngateway_url = "{fake.gateway_url}"\n'
             "edit_interval = 0.0\n")
    bot = BotProcess("discord", tmp_path, "fake-token", table,
                     lambda: lambda: fake.until(lambda: fake.connected, timeout=30))
    try:
        yield fake, bot
    finally:
        await bot.end()
        await fake.close()
