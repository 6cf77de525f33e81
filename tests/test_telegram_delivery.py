"""Delivery under Telegram's faults, counted: each reply delivered once, none lost, none doubled.

The real PTB client against the fake Bot API server, which refuses calls (429 storms, 502s),
answers late (after the client would have given up), and gets button presses it never made.
"""

from __future__ import annotations

import pytest

from bot.frontends import telegram_reply
from bot.i18n import t
from tests.harness import running_bot
from tests.telegram_bot import ALICE

WORDS = "one two three four five"


def finals(bot, chat, text: str) -> list[dict]:
    """The bot's messages in `chat` that show `text` exactly."""
    return [m for m in bot.fake.sent(chat) if m.get("text") == text]


async def ask(bot, chat, text: str) -> None:
    bot.fake.say(chat, ALICE, text)
    await bot.fake.wait_for(lambda: any(m.get("text") == f"echo: {text}"
                                        for m in bot.fake.sent(chat)), f"echo of {text!r}", 30)
    await bot.router.settle(30)


async def test_a_storm_of_ten_429s_on_sends_is_waited_out_and_delivers_once(tmp_path):
    async with running_bot("telegram", tmp_path) as bot:
        chat = bot.fake.private(ALICE)
        bot.fake.fail("sendMessage", 10, code=429, retry_after=0.01)
        await ask(bot, chat, WORDS)
        assert len(finals(bot, chat, f"echo: {WORDS}")) == 1
        assert len(bot.fake.sent(chat)) == 1  # nothing else, no half reply
        stored = await bot.last_reply(chat)
        assert stored is not None and stored.engine == "echo"


async def test_502s_on_sends_and_edits_are_retried_and_deliver_once(tmp_path):
    async with running_bot("telegram", tmp_path, engine="delay = 0.05", edit_interval=0.0) as bot:
        chat = bot.fake.private(ALICE)
        bot.fake.fail("sendMessage", 2)
        bot.fake.fail("editMessageText", 3)
        await ask(bot, chat, WORDS)
        assert len(finals(bot, chat, f"echo: {WORDS}")) == 1
        assert len(bot.fake.sent(chat)) == 1
        assert len(bot.fake.calls_to("sendMessage")) == 3  # two refused, one carried out


async def test_a_send_answered_after_the_clients_usual_timeout_is_not_sent_twice(tmp_path):
    async with running_bot("telegram", tmp_path) as bot:
        chat = bot.fake.private(ALICE)
        bot.fake.answer_late("sendMessage", 5.5)  # PTB's own read timeout is 5 s
        await ask(bot, chat, WORDS)
        assert len(bot.fake.sent(chat)) == 1
        assert len(finals(bot, chat, f"echo: {WORDS}")) == 1
        stored = await bot.last_reply(chat)
        [message] = bot.fake.sent(chat)
        reply = await bot.router.store.reply_for(
            await bot.router.store.find_chat("telegram", str(ALICE.id)),
            str(message["message_id"]))
        assert reply == stored.id  # its id came with the late answer: votes find it


async def test_a_send_that_timed_out_for_good_is_never_repeated(tmp_path, monkeypatch):
    monkeypatch.setattr(telegram_reply, "SEND_READ_TIMEOUT", 0.3)
    async with running_bot("telegram", tmp_path, engine="delay = 0.05", edit_interval=0.0) as bot:
        chat = bot.fake.private(ALICE)
        bot.fake.answer_late("sendMessage", 1.0)
        bot.fake.say(chat, ALICE, WORDS)
        await bot.fake.wait_for(lambda: bot.fake.calls_to("sendMessage"), "a send")
        await bot.router.settle(30)
        assert len(bot.fake.calls_to("sendMessage")) == 1  # timed out: maybe arrived, so once
        assert len(bot.fake.sent(chat)) == 1


@pytest.mark.parametrize("data", ["vote:sideways", "garbage", ""])
async def test_every_button_press_is_answered_even_with_unknown_data(tmp_path, data):
    async with running_bot("telegram", tmp_path) as bot:
        chat = bot.fake.private(ALICE)
        await ask(bot, chat, "hi")
        [reply] = bot.fake.sent(chat)
        query = bot.fake.press(chat, ALICE, reply["message_id"], data)
        await bot.fake.wait_for(lambda: query in bot.fake.answered, "the answer to the press")
        assert bot.fake.answered[query] == t("en", "button_unknown")
