"""The Discord bot killed and stopped mid-traffic, as a process, then started again on the same
data against the same fake Discord: counted across both runs, every mention answered exactly
once and in order, every reply it froze mid-stream finished (or marked), what came while it was
away or draining caught up from the channels' history, and what is too old only counted."""

from __future__ import annotations

import asyncio
import time

from bot.i18n import t
from tests.fake_discord import BOT_ID, BOT_USER, CHANNEL_ID, FakeDiscord, user
from tests.harness import bot_process

PEOPLE = [user(str(20 + n), f"P{n}") for n in range(4)]
DMS = [str(4100 + n) for n in range(len(PEOPLE))]  # one DM channel per person
LONG = " ".join(f"w{n}" for n in range(12))


async def mention(fake: FakeDiscord, text: str, channel: str = CHANNEL_ID,
                  **kw) -> str:
    if channel in DMS:
        return await fake.message(text, author=PEOPLE[DMS.index(channel)], channel_id=channel,
                                  in_guild=False, **kw)
    return await fake.message(f"<@{BOT_ID}> {text}", author=PEOPLE[0], mentions=[BOT_USER],
                              channel_id=channel, **kw)


def answered_once(fake: FakeDiscord, asked: dict[str, str]) -> bool:
    """Every asked message has exactly one reply, showing its whole echo."""
    return all([r.text for r in fake.replies_to(i)] == [f"echo: {x}"] for i, x in asked.items())


async def all_answered(fake: FakeDiscord, asked: dict[str, str]) -> None:
    try:
        await fake.until(lambda: answered_once(fake, asked), timeout=60)
    except AssertionError:
        wrong = {x: [r.texts for r in fake.replies_to(i)] for i, x in asked.items()
                 if [r.text for r in fake.replies_to(i)] != [f"echo: {x}"]}
        raise AssertionError(f"not answered exactly once: {wrong}") from None


def in_asked_order(fake: FakeDiscord, asked: dict[str, str], channel: str) -> bool:
    replies = [fake.replies_to(i)[0] for i in sorted(asked, key=int) if fake.replies_to(i)]
    ids = [int(r.id) for r in replies if r.channel_id == channel]
    return ids == sorted(ids)


async def test_kill_9_mid_stream_and_mid_queue_then_every_mention_is_answered_once(tmp_path):
    asked: dict[str, str] = {}
    async with bot_process("discord", tmp_path) as (fake, bot):
        await bot.start("[engines.echo]\ndelay = 0.25")
        streaming = {}
        for channel in [*DMS, CHANNEL_ID]:
            text = f"long in {channel} {LONG}"
            streaming[await mention(fake, text, channel)] = text
        for channel in [DMS[0], CHANNEL_ID, CHANNEL_ID]:  # waiting their turn
            text = f"queued in {channel} {len(asked)}"
            asked[await mention(fake, text, channel)] = text
        asked |= streaming
        # Every streamed reply shown and edited since: the bot knew (and kept) its id.
        await fake.until(lambda: all(len(r.texts) > 1 for i in streaming
                                     for r in fake.replies_to(i)[:1]) and
                         all(fake.replies_to(i) for i in streaming), timeout=30)
        await bot.kill()
        await fake.until(lambda: not fake.connected)
        frozen = {i: fake.replies_to(i)[0].text for i in streaming}
        for n in range(3):  # while it is down
            text = f"while down {n}"
            asked[await mention(fake, text, CHANNEL_ID if n else DMS[1], deliver=False)] = text
        await bot.start("[engines.echo]\ndelay = 0.0")
        await all_answered(fake, asked)
        await asyncio.sleep(1.0)  # time to send anything twice
        assert await bot.stop() == 0
    assert answered_once(fake, asked)
    assert all(text != f"echo: {asked[i]}" for i, text in frozen.items())  # they were frozen
    assert in_asked_order(fake, asked, CHANNEL_ID)
    assert len(fake.messages) == len(asked)  # nothing else was sent
    assert bot.rows("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL") == [(0,)]
    stored = bot.rows("SELECT text, COUNT(*) FROM messages GROUP BY text")
    assert [row for row in stored if row[1] != 1] == []  # none stored twice


async def test_mentions_during_a_sigterm_drain_are_answered_after_the_restart(tmp_path):
    asked: dict[str, str] = {}
    async with bot_process("discord", tmp_path) as (fake, bot):
        await bot.start("drain_seconds = 1.0\n[engines.echo]\ndelay = 1.0")
        long_ones = {}
        for channel in DMS[:2]:
            text = f"long in {channel} {LONG}"
            long_ones[await mention(fake, text, channel)] = text
        queued = f"queued behind {DMS[0]}"
        asked[await mention(fake, queued, DMS[0])] = queued
        await fake.until(lambda: all(fake.replies_to(i) for i in long_ones), timeout=30)
        bot.terminate()
        # Draining now, still connected. (A fixed pause here was too short on a loaded
        # machine: mentions that came before the bot heard the signal were answered.)
        await bot.draining()
        for n in range(3):
            text = f"during the drain {n}"
            asked[await mention(fake, text, CHANNEL_ID if n else DMS[2])] = text
        await fake.slash("help", author=PEOPLE[1])  # a slash command too
        assert await bot.stop() == 0
        cut = t("en", "cut_off")
        shown = [r.texts for i in long_ones for r in fake.replies_to(i)]
        assert all(texts[-1].endswith(cut) for texts in shown) and len(shown) == 2, shown
        assert not any(fake.replies_to(i) for i in asked)  # none answered during the drain
        await bot.start("[engines.echo]\ndelay = 0.0")
        await all_answered(fake, asked)
        # its interaction cannot be answered after a restart: a normal message instead
        await fake.until(lambda: [m for m in fake.in_channel(CHANNEL_ID) if "/help" in m.text])
        await asyncio.sleep(1.0)
        assert await bot.stop() == 0
    assert answered_once(fake, asked)
    assert all(len(fake.replies_to(i)) == 1 for i in long_ones)  # cut off once, left so
    assert len(fake.messages) == len(asked) + len(long_ones) + 1


async def test_what_came_longer_ago_than_catch_up_minutes_is_counted_not_answered(tmp_path):
    hours_ago = time.time() - 3 * 3600
    async with bot_process("discord", tmp_path) as (fake, bot):
        await bot.start()
        first = await mention(fake, "three hours ago", at=hours_ago)  # the last one handled
        await fake.until(lambda: fake.replies_to(first))
        assert await bot.stop() == 0
        old = [await mention(fake, f"old {n}", at=hours_ago + 3600 + n, deliver=False)
               for n in range(2)]
        fresh = await mention(fake, "just now", deliver=False)
        await bot.start()
        await fake.until(lambda: fake.replies_to(fresh))
        await asyncio.sleep(0.5)
        assert await bot.stop() == 0
    assert [r.text for r in fake.replies_to(fresh)] == ["echo: just now"]
    assert not any(fake.replies_to(i) for i in old)
    log = bot.log(1)
    assert "1 message(s) to answer, 2 older than 60 minutes not answered" in log, log


async def test_a_reply_frozen_too_long_ago_to_answer_is_marked_cut_off(tmp_path):
    async with bot_process("discord", tmp_path) as (fake, bot):
        await bot.start("[engines.echo]\ndelay = 0.5")
        asked = await mention(fake, f"long {LONG}", DMS[0])
        await fake.until(lambda: [r for r in fake.replies_to(asked) if len(r.texts) > 1])
        await bot.kill()
        frozen = fake.replies_to(asked)[0].text
        await asyncio.sleep(1.0)  # longer ago than catch_up_minutes below (0.6 s)
        await bot.start("[engines.echo]\ndelay = 0.0", "catch_up_minutes = 0.01")
        cut = t("en", "cut_off")
        await fake.until(lambda: fake.replies_to(asked)[0].text.endswith(cut))
        assert await bot.stop() == 0
    reply = fake.replies_to(asked)
    assert [r.text for r in reply] == [f"{frozen} {cut}"]
    assert bot.rows("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL") == [(0,)]
