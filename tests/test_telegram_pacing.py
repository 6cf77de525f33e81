"""Telegram groups paced within Telegram's limit, end to end: the real PTB client against the
fake Bot API, which counts message requests per chat and, like Telegram, answers 429 to a group
past its limit. The minute is scaled to WINDOW seconds so the tests take seconds."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from bot.app import App
from bot.frontends.telegram_pace import ChatPace
from tests.fake_telegram import FakeTelegram, Person
from tests.harness import frontend_running, make_config

ALICE = Person(1, "Alice")
WINDOW = 1.0  # seconds: Telegram's minute, scaled
LIMIT = 6  # messages a group may get within WINDOW (Telegram's 20, scaled with it)
WORDS = " ".join(f"w{i}" for i in range(60))  # a reply streamed word by word


@contextlib.asynccontextmanager
async def paced_bot(tmp_path, **telegram: Any):
    fake = await FakeTelegram(group_limit=LIMIT, window=WINDOW).start()
    options = {"base_url": fake.base_url, "poll_timeout": 1.0, "edit_interval": 0.01,
               "group_mode": "always", "vote_buttons": False,
               "group_messages": LIMIT, "group_window": WINDOW} | telegram
    body = "[policy]\nrate_per_minute = 0\n[engines.echo]\ndelay = 0.02\n[telegram]\n"
    body += "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    app = App(make_config(tmp_path, body), ["telegram"], env={"TELEGRAM_TOKEN": fake.token})
    try:
        async with frontend_running(app) as (router, _):
            yield fake, router
    finally:
        await fake.close()


async def answered(fake: FakeTelegram, router, chat, texts: list[str]) -> list[str]:
    """Say each text at once; the bot's messages in the chat once every one is answered."""
    for text in texts:
        fake.say(chat, ALICE, text)
    await fake.wait_for(lambda: len(fake.sent(chat)) >= len(texts), "the replies", timeout=30)
    await router.settle(30)
    return [m["text"] for m in fake.sent(chat)]


async def test_a_streamed_reply_in_a_group_stays_within_the_limit(tmp_path):
    async with paced_bot(tmp_path) as (fake, router):
        group = fake.group()
        [text] = await answered(fake, router, group, [WORDS])
        assert text == f"echo: {WORDS}"  # complete, in spite of the pace
        edits = fake.calls_to("editMessageText")
        assert 1 <= len(edits) < 60  # it grew while streaming, far from once per word
        assert fake.most_in_window(group) <= LIMIT
        assert fake.floods == 0

        private = fake.private(ALICE)
        [text] = await answered(fake, router, private, [WORDS])
        assert text == f"echo: {WORDS}"
        assert fake.most_in_window(private) > LIMIT  # a private chat is not held back


async def test_a_burst_of_replies_in_a_group_waits_its_turn_without_429s(tmp_path):
    async with paced_bot(tmp_path, edit_interval=100.0) as (fake, router):
        group, texts = fake.group(), [f"message {i}" for i in range(3 * LIMIT)]
        replies = await answered(fake, router, group, texts)
        assert sorted(replies) == sorted(f"echo: {text}" for text in texts)
        assert fake.most_in_window(group) <= LIMIT
        assert fake.floods == 0

        private = fake.private(ALICE)
        replies = await answered(fake, router, private, texts)
        assert len(replies) == len(texts)
        assert fake.most_in_window(private) > LIMIT


async def test_the_pace_counts_a_request_until_a_window_after_its_answer():
    now = [0.0]
    pace = ChatPace(2, 10.0, clock=lambda: now[0])
    async with pace.slot():
        assert pace.free() == 1
        assert pace.spare() is False  # half the window is kept for what must go out
    now[0] = 9.9
    async with pace.slot():
        pass
    assert pace.free() == 0
    now[0] = 10.0  # the first answer is a window old
    assert pace.free() == 1
    assert pace.stream_interval(1.0) == 10.0  # one stream alone: one edit per window here
