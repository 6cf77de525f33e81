"""The Discord frontend end to end: the real discord.py client talks REST and the gateway
websocket to a fake Discord on 127.0.0.1, with the real router, a real store in tmp_path and
the echo engine."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time

import discord
import pytest
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.http import Route
from discord.webhook.async_ import async_context

from bot.app import App
from bot.commands import COMMANDS
from bot.config import ConfigError
from bot.frontends.discord_routes import RoutedWebhookAdapter, Routes
from bot.i18n import t
from tests.discord_bot import (
    ALICE,
    BOB,
    DM_CHANNEL_ID,
    MESSAGE_CONTENT_INTENT,
    MOD,
    OTHER_BOT,
    make_app,
)
from tests.fake_discord import (
    BOT_CHANNEL_ID,
    BOT_ID,
    BOT_USER,
    CHANNEL_ID,
    FakeDiscord,
)
from tests.harness import ROOT, eventually_equal, make_config, running_bot, write_config


@pytest.fixture
async def bot(tmp_path):
    async with running_bot("discord", tmp_path) as running:
        yield running


async def test_a_mention_is_answered_as_a_reply_with_typing_shown(bot):
    reply = await bot.mention("hello there")
    assert reply.text == "echo: hello there"
    assert bot.fake.typing == [CHANNEL_ID]
    assert bot.fake.identify["intents"] & MESSAGE_CONTENT_INTENT


async def test_queued_mentions_in_one_channel_share_one_typing_indicator(tmp_path):
    async with running_bot("discord", tmp_path, "[engines.echo]\ndelay = 0.05") as bot:
        asked = [await bot.fake.message(f"<@{BOT_ID}> number {n} of five", author=ALICE,
                                        mentions=[BOT_USER]) for n in range(5)]
        await bot.fake.until(lambda: all(bot.fake.replies_to(i) for i in asked))
        await bot.router.settle(10)
        # one loop for the channel (discord.py types again every 5 s): not one per message
        assert bot.fake.typing == [CHANNEL_ID]
        assert [bot.fake.replies_to(i)[0].text for i in asked] == [
            f"echo: number {n} of five" for n in range(5)]


async def test_a_direct_message_is_answered(bot):
    asked = await bot.fake.message("hi in private", author=BOB, channel_id=DM_CHANNEL_ID,
                                   in_guild=False)
    reply = await bot.reply_to(asked)
    assert (reply.channel_id, reply.text) == (DM_CHANNEL_ID, "echo: hi in private")


async def test_a_reply_to_the_bot_and_a_listed_channel_are_answered(bot):
    first = await bot.mention("one")
    followup = await bot.fake.message("two", author=ALICE, reply_to=first)
    assert (await bot.reply_to(followup)).text == "echo: two"
    listed = await bot.fake.message("three", author=BOB, channel_id=BOT_CHANNEL_ID)
    assert (await bot.reply_to(listed)).text == "echo: three"


async def test_the_bot_ignores_itself_other_bots_and_chatter(bot):
    # The fake also sends every message the bot writes back to it, as Discord does.
    await bot.fake.message(f"<@{BOT_ID}> me", author=BOT_USER, mentions=[BOT_USER])
    await bot.fake.message(f"<@{BOT_ID}> beep", author=OTHER_BOT, mentions=[BOT_USER])
    await bot.fake.message("just chatting", author=BOB)
    await bot.mention("last")
    assert [m.text for m in bot.fake.in_channel(CHANNEL_ID)] == ["echo: last"]


async def test_a_slash_command_is_deferred_then_answered_by_editing(bot):
    answer = await bot.command("engines")
    assert answer.text.startswith(t("en", "engines_header", current="echo"))
    assert [c["type"] for c in bot.fake.callbacks] == [5]  # deferred, "thinking…"
    paths = [path for _, path, _ in bot.fake.requests]
    callback = next(i for i, p in enumerate(paths) if p.endswith("/callback"))
    edit = next(i for i, p in enumerate(paths) if p.endswith("/messages/@original"))
    assert callback < edit


async def test_a_slash_command_past_its_tokens_life_is_answered_with_a_normal_message(bot):
    before = len(bot.fake.messages)
    await bot.fake.slash("help", author=ALICE, at=time.time() - 16 * 60)
    answer = await bot.fake.until(lambda: bot.fake.in_channel(CHANNEL_ID))
    await bot.router.settle(10)
    assert len(bot.fake.messages) == before + 1
    assert answer[0].via == "channel" and "/help" in answer[0].text
    assert not any(m.via == "interaction" for m in bot.fake.messages.values())


async def test_commands_are_synced_in_english_and_german_with_engine_choices(bot):
    synced = {c["name"]: c for c in bot.fake.commands["global"]}
    assert set(synced) == set(COMMANDS)
    assert synced["help"]["description"] == t("en", "commands.help")
    assert synced["help"]["description_localizations"]["de"] == t("de", "commands.help")
    choices = [c["value"] for c in synced["engine"]["options"][0]["choices"]]
    assert choices == bot.router.engines.names
    assert int(synced["retrain"]["default_member_permissions"]) == 32  # Manage Server only
    assert synced["help"].get("default_member_permissions") is None


async def test_dev_guild_syncs_the_commands_to_that_server_only(tmp_path):
    async with running_bot("discord", tmp_path, dev_guild="2000") as bot:
        assert set(bot.fake.commands) == {"2000"}
        assert len(bot.fake.commands["2000"]) == len(COMMANDS)


async def test_switching_engines_needs_manage_server(bot):
    refused = await bot.mention("/engine echo", author=BOB)
    assert refused.text == t("en", "chat_admin_only", name="engine")
    accepted = await bot.mention("/engine echo", author=MOD, admin=True)
    assert accepted.text.startswith(t("en", "engine_set", engine="echo"))
    by_slash = await bot.command("engine", author=MOD, admin=True, name="echo")
    assert by_slash.text.startswith(t("en", "engine_set", engine="echo"))


async def test_retrain_is_refused_to_a_non_admin_and_accepted_from_a_bot_admin(tmp_path):
    async with running_bot("discord", tmp_path, 'admins = ["discord:13"]') as bot:
        refused = await bot.command("retrain", author=ALICE, admin=True)
        assert refused.text == t("en", "admin_only", name="retrain")
        accepted = await bot.command("retrain", author=MOD)
        assert t("en", "retrain_too_few", votes=0, needed=20) in accepted.text


async def test_a_streamed_reply_is_edited_in_order_up_to_its_final_text(tmp_path):
    async with running_bot("discord", tmp_path, edit_interval=0.0) as bot:
        reply = await bot.mention("one two three four")
    assert reply.texts == ["echo:", "echo: one", "echo: one two", "echo: one two three",
                           "echo: one two three four"]


async def test_edits_are_throttled_but_the_final_text_is_always_written(tmp_path):
    async with running_bot("discord", tmp_path, edit_interval=60.0) as bot:
        reply = await bot.mention("one two three four")
    assert reply.texts == ["echo:", "echo: one two three four"]


async def test_nothing_sent_can_ping_anyone(bot):
    reply = await bot.mention("@everyone and <@12> look")
    assert "@everyone" not in reply.text and "<@12>" in reply.text
    answer = await bot.command("next", text="@here <@&77> now")
    for sent in (reply, answer):
        assert sent.allowed_mentions and all(
            mentions == {"parse": []} for mentions in sent.allowed_mentions
        )


async def test_reactions_on_replies_become_votes_and_are_taken_back(bot):
    reply = await bot.mention("rate me")
    await bot.fake.react(reply.id, "👍", user_id=ALICE["id"])
    await bot.fake.react(reply.id, "👎", user_id=BOB["id"])
    await bot.fake.react(reply.id, "🦄", user_id="14")  # not a vote
    await eventually_equal(lambda: bot.stored_votes(reply), [(ALICE["id"], 1), (BOB["id"], -1)])
    await bot.fake.react(reply.id, "👍", user_id=ALICE["id"], added=False)
    await eventually_equal(lambda: bot.stored_votes(reply), [(BOB["id"], -1)])
    assert reply.reactions == []  # no hints of its own unless vote_hint


async def test_vote_hint_puts_the_first_up_and_down_reactions_under_replies(tmp_path):
    async with running_bot("discord", tmp_path, vote_hint=True) as bot:
        reply = await bot.mention("vote on me")
        await bot.fake.until(lambda: len(reply.reactions) == 2)
        assert reply.reactions == ["👍", "👎"]


async def test_a_429_is_waited_out_and_the_reply_delivered_once(bot):
    path = f"/api/v10/channels/{CHANNEL_ID}/messages"
    bot.fake.rate_limit_next("POST", path)
    reply = await bot.mention("patience")
    assert reply.text == "echo: patience"
    assert [m.text for m in bot.fake.in_channel(CHANNEL_ID)] == ["echo: patience"]
    assert [p for m, p, _ in bot.fake.requests if m == "POST" and p == path] == [path, path]


async def test_a_reply_over_2000_characters_is_split(bot):
    words = " ".join(f"w{i:03d}" for i in range(500))  # 2499 characters
    reply = await bot.mention(words)
    parts = bot.fake.in_channel(CHANNEL_ID)
    assert len(parts) == 2 and all(len(p.text) <= 2000 for p in parts)
    assert " ".join(p.text for p in parts) == f"echo: {words}"
    assert parts[0] is reply and parts[1].reference == ""


async def test_empty_messages_log_how_to_enable_the_message_content_intent(bot, caplog):
    with caplog.at_level(logging.WARNING, logger="bot.frontends.discord"):
        await bot.fake.message("", author=BOB, channel_id=BOT_CHANNEL_ID)
        await bot.mention("after")
    assert "Message Content intent" in caplog.text
    assert [m.text for m in bot.fake.in_channel(BOT_CHANNEL_ID)] == []


async def test_a_refused_message_content_intent_is_logged_and_ends_the_frontend(
    tmp_path, caplog
):
    fake = await FakeDiscord().start()
    fake.refuse_intents = True
    app = make_app(tmp_path, fake)
    try:
        async with app.serving() as router:
            frontend = app.frontends[0]
            await frontend.start(router)
            with pytest.raises(discord.PrivilegedIntentsRequired):
                await asyncio.wait_for(frontend.wait(), timeout=10)
            await frontend.stop()
    finally:
        await fake.close()
    assert "enable the Message Content intent" in caplog.text


def test_ids_in_the_config_must_be_ids(tmp_path):
    with pytest.raises(ConfigError, match=r"\[discord\] channels: expected ids"):
        App(make_config(tmp_path, '[discord]\nchannels = ["#general"]\n'), ["discord"],
            env={"DISCORD_TOKEN": "fake-token"})


def test_routes_move_only_this_client_and_leave_the_library_defaults_alone():
    routes = Routes("http://127.0.0.1:1/api/v10/", "ws://127.0.0.1:1/gateway")
    route = routes.rest(Route("GET", "/channels/{channel_id}", channel_id=7))
    assert route.url == "http://127.0.0.1:1/api/v10/channels/7"
    assert routes.gateway("wss://gateway.discord.gg/?v=10&encoding=json") == \
        "ws://127.0.0.1:1/gateway?v=10&encoding=json"
    resume = "ws://elsewhere/?v=10"  # READY's resume_gateway_url is used as it is
    assert routes.gateway(resume) == resume
    assert Route.BASE == "https://discord.com/api/v10"
    assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"
    assert not isinstance(async_context.get(), RoutedWebhookAdapter)


async def test_python_m_bot_discord_answers_a_mention(tmp_path):
    fake = await FakeDiscord().start()
    body = (f'[bot]\ndefault_engine = "echo"\n[discord]\napi_base = "{fake.api_base}"\n'
            f'gateway_url = "{fake.gateway_url}"\n')
    config = write_config(tmp_path / "config.toml", body)
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1,localhost",
               DISCORD_TOKEN="fake-token")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "discord", "--config", str(config),
        "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake.until(lambda: fake.guild_sent, timeout=30)
        asked = await fake.message(f"<@{BOT_ID}> from a process", author=ALICE,
                                   mentions=[BOT_USER])
        expected = "echo: from a process"
        await fake.until(lambda: [r for r in fake.replies_to(asked) if r.text == expected])
        assert len(fake.in_channel(CHANNEL_ID)) == 1
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await fake.close()


class TokenCheckingDiscord(FakeDiscord):
    """A fake Discord that, like Discord, answers 401 to a token it did not issue."""

    async def _me(self, request, parts, body):
        if request.headers.get("Authorization") != "Bot fake-token":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return await super()._me(request, parts, body)


async def run_bot_discord(tmp_path, api_base: str, gateway_url: str, token: str,
                          *args: str) -> tuple[int, str]:
    """`python -m bot discord` to its end: (exit code, stderr)."""
    body = (f'[bot]\ndefault_engine = "echo"\n[discord]\napi_base = "{api_base}"\n'
            f'gateway_url = "{gateway_url}"\n')
    config = write_config(tmp_path / "config.toml", body)
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1,localhost",
               DISCORD_TOKEN=token)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "discord", "--config", str(config),
        "--data-dir", str(tmp_path / "data"), *args, cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, stderr.decode()


async def test_a_refused_token_is_one_line_that_hides_it_and_exit_2(tmp_path):
    fake = await TokenCheckingDiscord().start()
    try:
        code, stderr = await run_bot_discord(tmp_path, fake.api_base, fake.gateway_url,
                                             "WRONG-SECRET")
    finally:
        await fake.close()
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("eliza2llm: discord: "), stderr
    assert "refused DISCORD_TOKEN" in stderr and "WRONG-SECRET" not in stderr
    assert not [r for r in fake.requests if "commands" in r[1]]  # it stopped at the login


async def test_an_unreachable_discord_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api_base, gateway = f"http://127.0.0.1:{port}/api/v10", f"ws://127.0.0.1:{port}/gateway"
    code, stderr = await run_bot_discord(tmp_path, api_base, gateway, "fake-token")
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and f"discord: cannot reach {api_base}" in stderr, stderr
