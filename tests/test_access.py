"""[access]: who may use the bot. The rule on its own, then through the router (nothing of a
refused person is stored), then end to end on Telegram and Discord through their fakes."""

from __future__ import annotations

import contextlib
import json

import pytest

from bot.access import admitted
from bot.app import App
from bot.config import AccessOptions, BotOptions, ConfigError
from bot.events import Incoming, Reaction
from bot.i18n import t
from tests.discord_bot import ALICE as D_ALICE
from tests.discord_bot import BOB as D_BOB
from tests.discord_bot import Bot as DiscordBot
from tests.fake_discord import BOT_ID, BOT_USER, CHANNEL_ID, GUILD_ID, user
from tests.fake_telegram import FakeTelegram, Person
from tests.harness import (
    RecordingSink,
    eventually_equal,
    frontend_running,
    make_config,
    running_bot,
)
from tests.telegram_bot import Bot as TelegramBot

REFUSED = t("en", "access_refused")


def who(user_id: str = "1", chat: str = "c", group: bool = True, server: str = "",
        roles: tuple[str, ...] = (), platform: str = "discord") -> Incoming:
    return Incoming(platform=platform, chat_id=chat, user_id=user_id, text="hi",
                    is_group=group, server_id=server, roles=roles)


def test_allow_block_and_private_chats_decide_together():
    bot = BotOptions(admins=["discord:9"])
    course = AccessOptions(allow=["discord:server:S", "discord:user:7"],
                           block=["discord:role:R", "discord:chat:noisy"])
    assert admitted(who(server="S"), course, bot)
    assert not admitted(who(server="other"), course, bot)  # not on the allow list
    assert not admitted(who(group=False), course, bot)  # a stranger's DM: no server
    assert admitted(who("7", group=False), course, bot)  # listed by user
    assert not admitted(who(server="S", roles=("R",)), course, bot)  # block wins
    assert not admitted(who(server="S", chat="noisy"), course, bot)
    assert admitted(who("9", server="S", roles=("R",)), course, bot)  # admins always
    no_dms = AccessOptions(private_chats=False)
    assert admitted(who(), no_dms, bot) and not admitted(who(group=False), no_dms, bot)
    assert admitted(who(platform="console", group=False), no_dms, bot)  # the operator
    assert admitted(who(), AccessOptions(), bot)  # empty lists: everyone


@pytest.mark.parametrize("entry", ["telegram:42", "discord:guild:1", "telegram:user:", "x"])
def test_a_malformed_entry_is_a_config_error(tmp_path, entry):
    with pytest.raises(ConfigError, match=r"\[access\] block: expected \"platform:kind:id\""):
        make_config(tmp_path, f"[access]\nblock = [{json.dumps(entry)}]\n")


async def count(router, sql: str) -> int:
    async with router.store.db.execute(sql) as cursor:
        return (await cursor.fetchone())[0]


async def test_a_blocked_person_leaves_no_row_and_no_vote(serve):
    async with serve('[access]\nblock = ["test:user:mallory"]\n') as router:
        alice = RecordingSink()
        await router.handle(Incoming("test", "g", "alice", "hello", is_group=True), alice)
        assert alice.final == "echo: hello"
        group = RecordingSink()
        await router.handle(Incoming("test", "g", "mallory", "let me in", is_group=True), group)
        assert group.final is None and group.updates == []  # nothing at all in a group
        private = RecordingSink()
        await router.handle(Incoming("test", "dm", "mallory", "/help"), private)
        assert private.final == REFUSED  # one line in a private chat ...
        again = RecordingSink()
        await router.handle(Incoming("test", "dm", "mallory", "hello?"), again)
        assert again.final is None  # ... not one per message
        on_reply = f"sent-{id(alice)}"  # the id RecordingSink gave alice's reply
        assert not await router.react(Reaction("test", "g", "mallory", on_reply, "👍"))
        assert await router.react(Reaction("test", "g", "alice", on_reply, "👍"))
        await router.store_unanswered(Incoming("test", "g", "mallory",
                                               "found late, after a restart", is_group=True))
        assert await count(router, "SELECT COUNT(*) FROM users WHERE platform_user_id = 'mallory'"
                           ) == 0
        assert await count(router, "SELECT COUNT(*) FROM chats WHERE platform_chat_id = 'dm'") == 0
        assert await count(router, "SELECT COUNT(*) FROM messages") == 2  # alice's exchange
        assert await count(router, "SELECT COUNT(*) FROM feedback") == 1  # alice's


# Telegram end to end --------------------------------------------------------------------------

T_ALICE, T_BOB, T_EVE = Person(1, "Alice"), Person(2, "Bob"), Person(66, "Eve")


@contextlib.asynccontextmanager
async def telegram_bot(tmp_path, access: str):
    fake = await FakeTelegram().start()
    options = {"base_url": fake.base_url, "poll_timeout": 1.0, "edit_interval": 100.0,
               "group_mode": "always"}
    body = f"[policy]\nrate_per_minute = 0\n[access]\n{access}\n[telegram]\n"
    body += "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    app = App(make_config(tmp_path, body), ["telegram"], env={"TELEGRAM_TOKEN": fake.token})
    try:
        async with frontend_running(app) as (router, frontend):
            yield TelegramBot(fake, router, frontend)
    finally:
        await fake.close()


async def test_telegram_allow_list_answers_the_course_group_only(tmp_path):
    async with telegram_bot(tmp_path, 'allow = ["telegram:chat:-1001"]\n'
                                      'block = ["telegram:user:66"]') as bot:
        course, other = bot.fake.group(-1001), bot.fake.group(-2002, "Elsewhere")
        [reply] = await bot.reply_to(course, T_ALICE, "hello course")
        assert reply["text"] == "echo: hello course"
        bot.fake.say(other, T_BOB, "hello elsewhere")  # not allowed: silence in a group
        bot.fake.say(course, T_EVE, "hello from eve")  # blocked, in an allowed group
        [refused] = await bot.reply_to(bot.fake.private(T_BOB), T_BOB, "let me in")
        assert refused["text"] == REFUSED  # a private chat is told, in one line
        [reply] = await bot.reply_to(course, T_ALICE, "still here")
        assert reply["text"] == "echo: still here"
        assert bot.fake.sent(other) == [] and len(bot.fake.sent(course)) == 2
        store = bot.router.store
        assert await store.find_chat("telegram", str(other.id)) is None
        assert await count(bot.router, "SELECT COUNT(*) FROM users WHERE platform_user_id IN "
                                       "('2', '66')") == 0


# Discord end to end, with a role ----------------------------------------------------------------

STUDENT_ROLE = "2001"  # the fake server's one role besides @everyone (it gives Manage Server,
# which the bot reads as a chat admin's right, not as a bot admin)


async def test_discord_role_and_server_allow_and_a_blocked_user(tmp_path):
    access = (f'[access]\nallow = ["discord:role:{STUDENT_ROLE}"]\n'
              f'block = ["discord:user:{D_BOB["id"]}"]\n')
    async with running_bot("discord", tmp_path, access) as bot:
        bot: DiscordBot
        allowed = await bot.mention("with the role", admin=True)  # admin=True: has the role
        assert allowed.text == "echo: with the role"
        await bot.fake.message(f"<@{BOT_ID}> no role", author=user("14", "Nora"),
                               mentions=[BOT_USER])
        await bot.fake.message(f"<@{BOT_ID}> blocked", author=D_BOB, mentions=[BOT_USER],
                               admin=True)  # the role, but blocked: block wins
        asked = await bot.fake.message("a DM", author=D_ALICE, channel_id="4000",
                                       in_guild=False)
        refused = await bot.reply_to(asked)  # no roles in a DM: refused, and told
        assert refused.text == REFUSED
        last = await bot.mention("again", admin=True)
        assert last.text == "echo: again"
        assert [m.text for m in bot.fake.in_channel(CHANNEL_ID)] == [
            "echo: with the role", "echo: again"]
        await bot.fake.react(allowed.id, "👍", user_id="14")  # a vote without the role
        await bot.fake.react(allowed.id, "👎", user_id=D_ALICE["id"], admin=True)
        await eventually_equal(lambda: bot.stored_votes(allowed), [(D_ALICE["id"], -1)])
        assert await count(bot.router, "SELECT COUNT(*) FROM users WHERE platform_user_id IN "
                                       f"('14', '{D_BOB['id']}')") == 0


async def test_discord_server_allow_list(tmp_path):
    access = f'[access]\nallow = ["discord:server:{GUILD_ID}"]\n'
    async with running_bot("discord", tmp_path, access) as bot:
        reply = await bot.mention("in the server")
        assert reply.text == "echo: in the server"
        await bot.fake.react(reply.id, "👍", user_id=D_ALICE["id"])
        await eventually_equal(lambda: bot.stored_votes(reply), [(D_ALICE["id"], 1)])
