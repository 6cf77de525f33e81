"""The Telegram frontend end to end: the real PTB Application talks HTTP to a fake Bot API
server on 127.0.0.1, with the real router, a real store in tmp_path and the echo engine."""

from __future__ import annotations

import pytest
from telegram.error import EndPointNotFound

from bot.commands import COMMANDS, summary
from bot.i18n import t
from tests.harness import eventually_equal, running_bot, votes_on
from tests.telegram_bot import ADA, ALICE, BOB, OTHER_BOT


@pytest.fixture
async def bot(tmp_path):
    async with running_bot("telegram", tmp_path) as running:
        yield running




# private chats, commands --------------------------------------------------------------------


async def test_private_chat_engine_command_then_a_streamed_reply(bot):
    chat = bot.fake.private(ALICE)
    [answer] = await bot.reply_to(chat, ALICE, "/engine echo")
    assert answer["text"] == t("en", "engine_set", engine="echo") + "\nHello, I repeat."
    assert "reply_markup" not in answer  # a command's answer is not a reply to vote on

    [reply] = await bot.reply_to(chat, ALICE, "hello there")
    assert reply["text"] == "echo: hello there"
    buttons = reply["reply_markup"]["inline_keyboard"][0]
    assert [(b["text"], b["callback_data"]) for b in buttons] == [("👍", "vote:up"),
                                                                  ("👎", "vote:down")]
    assert {"chat_id": ALICE.id, "action": "typing"} in bot.fake.calls_to("sendChatAction")
    stored = await bot.last_reply(chat)
    assert (stored.engine, stored.engine_version) == ("echo", "echo-1")


async def test_start_opens_a_chat_with_the_help_text(bot):
    [answer] = await bot.reply_to(bot.fake.private(ALICE), ALICE, "/start")
    assert answer["text"].startswith(t("en", "help_header"))


async def test_vote_buttons_can_be_switched_off(tmp_path):
    async with running_bot("telegram", tmp_path, vote_buttons=False) as bot:
        [reply] = await bot.reply_to(bot.fake.private(ALICE), ALICE, "no buttons")
        assert reply["text"] == "echo: no buttons" and "reply_markup" not in reply


async def test_commands_are_registered_in_english_and_german(bot):
    for code, lang in ((None, "en"), ("de", "de")):
        menu = bot.fake.commands[code]
        assert [c["command"] for c in menu] == list(COMMANDS)
        assert [c["description"] for c in menu] == [summary(n, lang) for n in COMMANDS]
    assert bot.fake.commands[None] != bot.fake.commands["de"]


async def test_polling_asks_for_reactions_and_button_presses(bot):
    await bot.fake.wait_for(lambda: bot.fake.calls_to("getUpdates"), "a getUpdates")
    allowed = bot.fake.calls_to("getUpdates")[-1]["allowed_updates"]
    assert {"message", "message_reaction", "callback_query"} <= set(allowed)


async def test_retrain_is_refused_to_a_non_admin_and_accepted_from_a_bot_admin(bot):
    [refused] = await bot.reply_to(bot.fake.private(ALICE), ALICE, "/retrain")
    assert refused["text"] == t("en", "admin_only", name="retrain")
    [accepted] = await bot.reply_to(bot.fake.private(ADA), ADA, "/retrain")
    assert t("en", "retrain_too_few", votes=0, needed=20) in accepted["text"]


# groups -------------------------------------------------------------------------------------


async def test_group_answers_mentions_replies_and_commands_only(bot):
    group = bot.fake.group()
    bot.fake.say(group, BOB, "just chatting among people")
    bot.fake.say(group, OTHER_BOT, "@eliza2llm_bot hello from a bot")
    bot.fake.say(group, BOB, "/help@other_bot")
    mention = bot.fake.say(group, BOB, "@eliza2llm_bot how are you")
    await bot.fake.wait_for(lambda: bot.fake.sent(group), "the answer to a mention")
    await bot.router.settle(10)
    [answer] = bot.fake.sent(group)
    assert answer["text"] == "echo: how are you"
    first_send = bot.fake.calls_to("sendMessage")[0]
    assert first_send["reply_parameters"]["message_id"] == mention

    [status] = await bot.reply_to(group, BOB, "/status@eliza2llm_bot")
    assert status["text"].startswith("Engine: echo")
    [threaded] = await bot.reply_to(group, BOB, "and you?", reply_to=answer["message_id"])
    assert threaded["text"] == "echo: and you?"
    [plain] = await bot.reply_to(group, BOB, "/engines")
    assert plain["text"].startswith(t("en", "engines_header", current="echo"))
    assert len(bot.fake.sent(group)) == 4  # nothing for the chatter, the bot, the other bot


async def test_group_mode_always_answers_everything_but_bots(tmp_path):
    async with running_bot("telegram", tmp_path, group_mode="always") as bot:
        group = bot.fake.group()
        bot.fake.say(group, OTHER_BOT, "a bot talking")
        [reply] = await bot.reply_to(group, BOB, "just chatting")
        assert reply["text"] == "echo: just chatting"
        assert len(bot.fake.sent(group)) == 1


async def test_switching_the_engine_in_a_group_needs_a_chat_admin(bot):
    group = bot.fake.group(admins=(BOB.id,))
    [refused] = await bot.reply_to(group, ALICE, "/engine echo")
    assert refused["text"] == t("en", "chat_admin_only", name="engine")
    [done] = await bot.reply_to(group, BOB, "/engine echo")
    assert done["text"].startswith(t("en", "engine_set", engine="echo"))
    assert len(bot.fake.calls_to("getChatAdministrators")) == 1  # the list is cached


# streaming, limits, plain text --------------------------------------------------------------


async def test_a_streamed_reply_is_edited_in_order_up_to_its_final_text(tmp_path):
    async with running_bot("telegram", tmp_path, engine="delay = 0.01", edit_interval=0.0) as bot:
        chat = bot.fake.private(ALICE)
        [reply] = await bot.reply_to(chat, ALICE, "one two three four")
        first = bot.fake.calls_to("sendMessage")[0]["text"]
        edits = [e["text"] for e in bot.fake.calls_to("editMessageText")]
        assert [first, *edits] == ["echo:", "echo: one", "echo: one two", "echo: one two three",
                                   "echo: one two three four"]
        assert reply["text"] == "echo: one two three four"


async def test_edits_are_throttled_but_the_final_text_is_always_written(bot):
    [reply] = await bot.reply_to(bot.fake.private(ALICE), ALICE, "one two three four")
    assert [e["text"] for e in bot.fake.calls_to("editMessageText")] == [reply["text"]]
    assert reply["text"] == "echo: one two three four"


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB's own
async def test_flood_control_is_waited_out_and_the_reply_arrives_once(bot):
    chat = bot.fake.private(ALICE)
    bot.fake.fail_once("sendMessage", retry_after=1)
    bot.fake.fail_once("editMessageText", retry_after=1)
    [reply] = await bot.reply_to(chat, ALICE, "patience please")
    assert reply["text"] == "echo: patience please"
    assert len(bot.fake.calls_to("sendMessage")) == 2  # refused once, then delivered
    assert len(bot.fake.calls_to("editMessageText")) == 2
    assert len(bot.fake.sent(chat)) == 1


async def test_a_reply_over_4096_characters_is_split(bot):
    chat = bot.fake.private(ADA)  # a bot admin: not held to [policy] max_input_chars
    text = " ".join(["abcdefghi" * 5] * 200)  # the echo is 10,005 characters
    parts = await bot.reply_to(chat, ADA, text, count=3)
    assert len(parts) == 3 and all(len(p["text"]) <= 4096 for p in parts)
    assert " ".join(p["text"] for p in parts) == "echo: " + text
    assert len(bot.fake.sent(chat)) == 3


async def test_markup_in_user_text_comes_back_as_plain_text(bot):
    markup = "<b>bold</b> *star* _under_ [link](http://example.com) `code`"
    [reply] = await bot.reply_to(bot.fake.private(ALICE), ALICE, markup)
    assert reply["text"] == "echo: " + markup and "entities" not in reply
    calls = bot.fake.calls_to("sendMessage") + bot.fake.calls_to("editMessageText")
    assert calls and not any("parse_mode" in call for call in calls)


# feedback -----------------------------------------------------------------------------------


async def test_reactions_vote_change_and_unvote(bot):
    chat = bot.fake.private(ALICE)
    [reply] = await bot.reply_to(chat, ALICE, "rate me")
    reply_id = (await bot.last_reply(chat)).id

    async def votes_are(expected):
        await eventually_equal(lambda: votes_on(bot.router.store, reply_id), expected)

    bot.fake.react(chat, ALICE, reply["message_id"], [], ["👍"])
    await votes_are([("1", 1)])
    bot.fake.react(chat, ALICE, reply["message_id"], ["👍"], ["👎"])
    await votes_are([("1", -1)])
    bot.fake.react(chat, ALICE, reply["message_id"], ["👎"], [])
    await votes_are([])


async def test_vote_buttons_store_a_vote_and_answer_the_press(bot):
    group = bot.fake.group()
    [reply] = await bot.reply_to(group, BOB, "@eliza2llm_bot rate me")
    reply_id = (await bot.last_reply(group)).id
    query = bot.fake.press(group, ALICE, reply["message_id"], "vote:down")
    await eventually_equal(lambda: votes_on(bot.router.store, reply_id), [("1", -1)])
    await bot.fake.wait_for(lambda: bot.fake.calls_to("answerCallbackQuery"), "an answer")
    [answer] = bot.fake.calls_to("answerCallbackQuery")
    assert answer == {"callback_query_id": query,
                      "text": t("en", "vote_button_saved", vote="👎")}


# configuration and the fake itself ----------------------------------------------------------


async def test_the_fake_answers_unknown_methods_with_404(bot):
    with pytest.raises(EndPointNotFound):
        await bot.frontend.app.bot.do_api_request("noSuchMethod")
