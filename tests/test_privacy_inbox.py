"""The Telegram inbox keeps each raw update (with its text) only until it is handled (issue
25.5): the text of a person who opted out, of a bot that stores no text, and of group chatter
not addressed to the bot is in neither the database nor its WAL after the next checkpoint."""

from __future__ import annotations

import contextlib
import json

from bot.app import App
from tests.fake_telegram import FakeTelegram, Person
from tests.harness import frontend_running, make_config

ALICE, BOB = Person(1, "Alice"), Person(2, "Bob")


@contextlib.asynccontextmanager
async def telegram_bot(tmp_path, privacy: str = ""):
    fake = await FakeTelegram().start()
    options = {"base_url": fake.base_url, "poll_timeout": 1.0, "edit_interval": 100.0}
    body = "[policy]\nrate_per_minute = 0\n" + privacy + "[telegram]\n"
    body += "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    app = App(make_config(tmp_path, body), ["telegram"], env={"TELEGRAM_TOKEN": fake.token})
    try:
        async with frontend_running(app) as (router, _):
            yield fake, router
    finally:
        await fake.close()


async def answered(fake, router, chat, person, text: str) -> None:
    before = len(fake.sent(chat))
    fake.say(chat, person, text)
    await fake.wait_for(lambda: len(fake.sent(chat)) > before, f"a reply to {text!r}")
    await router.settle(10)


async def handled_everything(fake, router) -> None:
    """Every delivery handled, then a checkpoint, then the next write (a message answered)."""
    for _ in range(200):
        if not await router.store.unhandled("telegram"):
            break
        await router.settle(0.05)
    await router.store.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    await answered(fake, router, fake.private(BOB), BOB, "and now something else")


def on_disk(tmp_path) -> bytes:
    data = tmp_path / "data"
    return b"".join(p.read_bytes() for p in sorted(data.glob("*.sqlite3*")))


async def test_texts_not_kept_leave_the_inbox_and_the_wal_once_handled(tmp_path):
    group_chatter, opted_out = "chatter-qpw7731 among people", "opted-out-zrv5542 words"
    async with telegram_bot(tmp_path) as (fake, router):
        await answered(fake, router, fake.private(ALICE), ALICE, "/optout")
        await answered(fake, router, fake.private(ALICE), ALICE, opted_out)
        group = fake.group()
        fake.say(group, BOB, group_chatter)  # not addressed to the bot: never answered
        await answered(fake, router, group, BOB, "@eliza2llm_bot hello kept-4471")
        await handled_everything(fake, router)
        disk = on_disk(tmp_path)
    assert b"qpw7731" not in disk and b"zrv5542" not in disk
    assert b"kept-4471" in disk  # what may be kept is kept: these are the right files


async def test_with_store_text_false_no_text_outlives_its_handling(tmp_path):
    secret = "unkept-mjx2209 text"
    async with telegram_bot(tmp_path, "[privacy]\nstore_text = false\n") as (fake, router):
        await answered(fake, router, fake.private(ALICE), ALICE, secret)
        await handled_everything(fake, router)
        disk = on_disk(tmp_path)
    assert b"mjx2209" not in disk
