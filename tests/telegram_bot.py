"""The Telegram frontend under test: the real PTB Application against the fake Bot API server
(tests/fake_telegram.py), its people, and a bot running with the real router and store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bot.app import App
from bot.frontends.telegram import TelegramFrontend
from tests.bot_process import BotProcess
from tests.fake_telegram import FakeTelegram, Person
from tests.harness import frontend_running, make_config

ALICE = Person(1, "Alice")
BOB = Person(2, "Bob")
ADA = Person(3, "Ada")  # a bot admin, by [bot] admins
OTHER_BOT = Person(50, "Other", is_bot=True, username="other_bot")
# Five people for the bursts of the restart tests (ids 1-3 as above, other names).
PEOPLE = [Person(i, f"P{i}") for i in range(1, 6)]


@dataclass
class Bot:
    fake: FakeTelegram
    router: Any
    frontend: TelegramFrontend

    async def reply_to(self, chat, user, text: str, count: int = 1, **kw) -> list[dict]:
        """Say `text`; wait until the bot has `count` more messages there and is done editing."""
        before = len(self.fake.sent(chat))
        self.fake.say(chat, user, text, **kw)
        await self.fake.wait_for(lambda: len(self.fake.sent(chat)) >= before + count,
                                 f"a reply to {text[:40]!r}")
        await self.router.settle(10)  # the reply is complete once the router is done with it
        return self.fake.sent(chat)[before:]

    async def last_reply(self, chat):
        stored = await self.router.store.find_chat("telegram", str(chat.id))
        return await self.router.store.last_reply(stored)


@contextlib.asynccontextmanager
async def running(tmp_path, engine: str = "", **telegram: Any):
    """The bot on the fake Bot API; `engine`: keys of [engines.echo]; `telegram`: of
    [telegram]."""
    fake = await FakeTelegram().start()
    options = {"base_url": fake.base_url, "poll_timeout": 1.0, "edit_interval": 100.0} | telegram
    body = 'admins = ["telegram:3"]\n[policy]\nrate_per_minute = 0\n'
    body += f"[engines.echo]\n{engine}\n[telegram]\n"
    body += "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    app = App(make_config(tmp_path, body), ["telegram"], env={"TELEGRAM_TOKEN": fake.token})
    try:
        async with frontend_running(app) as (router, frontend):
            yield Bot(fake, router, frontend)
    finally:
        await fake.close()


@contextlib.asynccontextmanager
async def process(tmp_path) -> AsyncIterator[tuple[FakeTelegram, BotProcess]]:
    """`python -m bot telegram` on the fake Bot API (not started yet), killed at the end."""
    fake = await FakeTelegram().start()

    def polling():  # a new start has polled once it asks for updates once more
        polls = len(fake.calls_to("getUpdates"))
        return lambda: fake.wait_for(lambda: len(fake.calls_to("getUpdates")) > polls,
                                     "polling", 30)

    table = f'base_url = "{fake.base_url}"\npoll_timeout = 0.5\nedit_interval = 0.0\n'
    bot = BotProcess("telegram", tmp_path, fake.token, table, polling)
    try:
        yield fake, bot
    finally:
        await bot.end()
        await fake.close()
