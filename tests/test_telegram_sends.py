"""A sent message's id is recorded the moment Telegram's answer arrives, even while the bot's
event loop is busy: sends are answered on a thread of their own (telegram_sends.py), so a bot
killed then still edits that message after its restart instead of sending the reply again.
The fake Bot API runs on a thread of its own here, as Telegram is another machine."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.app import App
from tests.fake_telegram import FakeTelegram
from tests.harness import eventually, frontend_running, make_config
from tests.telegram_bot import ALICE


async def test_the_id_of_a_send_is_recorded_while_the_bots_loop_is_busy(tmp_path):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_fake(fn: Callable[..., Any], *args: Any) -> None:
        loop.call_soon_threadsafe(fn, *args)

    fake = asyncio.run_coroutine_threadsafe(FakeTelegram().start(), loop).result()
    body = ('[policy]\nrate_per_minute = 0\n[telegram]\n'
            f'base_url = "{fake.base_url}"\npoll_timeout = 0.5\n')
    app = App(make_config(tmp_path, body), ["telegram"], env={"TELEGRAM_TOKEN": fake.token})
    chat = fake.private(ALICE)
    try:
        async with frontend_running(app) as (router, _):
            on_fake(fake.answer_late, "sendMessage", 0.3)  # carried out, answered 0.3 s later
            on_fake(fake.say, chat, ALICE, "hello")
            await eventually(lambda: fake.calls_to("sendMessage"), "the send", 30)
            time.sleep(1.0)  # the bot's loop busy: not one of its tasks runs meanwhile
            [sent] = fake.sent(chat)
            journal = (tmp_path / "data" / "telegram-sent.jsonl").read_text().splitlines()
            assert [str(sent["message_id"])] in [json.loads(line)[1] for line in journal]
            await eventually(lambda: fake.sent(chat)[0].get("text") == "echo: hello", "the reply",
                             30)
            await router.settle(10)
    finally:
        asyncio.run_coroutine_threadsafe(fake.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
    assert len(fake.sent(chat)) == 1
