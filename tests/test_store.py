"""The store on real SQLite files: migrations, votes, concurrency, forgetting."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time

import pytest

from bot.store import MIGRATIONS, Store
from bot.store import migrations as store_module
from tests.harness import votes_on


async def test_migrations_run_once_from_an_empty_file_and_reopen(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = await Store.open(path)
    assert await store.schema_version() == len(MIGRATIONS)
    chat = await store.chat("p", "c")
    await store.close()

    again = await Store.open(path)
    assert await again.schema_version() == len(MIGRATIONS)
    assert (await again.chat("p", "c")).id == chat.id
    await again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        names = [row[0] for row in db.execute("SELECT name FROM schema_version ORDER BY version")]
    assert names == [m.__name__ for m in MIGRATIONS]


async def test_a_new_migration_applies_to_an_existing_database(tmp_path, monkeypatch):
    path = tmp_path / "db.sqlite3"
    await (await Store.open(path)).close()

    async def m999_add_column(db):
        await db.execute("ALTER TABLE chats ADD COLUMN note TEXT")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, m999_add_column])
    store = await Store.open(path)
    assert await store.schema_version() == len(MIGRATIONS) + 1
    await store.db.execute("UPDATE chats SET note = 'x'")  # the column exists
    await store.close()


async def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "db.sqlite3"
    await (await Store.open(path)).close()

    async def m999_broken(db):
        await db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("bad step")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, m999_broken])
    with pytest.raises(RuntimeError, match="bad step"):
        await Store.open(path)
    with sqlite3.connect(path) as db:
        leftover = db.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'")
        assert leftover.fetchall() == []


async def test_one_vote_per_user_per_reply(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite3")
    chat = await store.chat("p", "c")
    alice, bob = await store.user("p", "alice"), await store.user("p", "bob")
    reply = await store.add_message(chat, alice, "bot", "hi", platform_ids=["42"])
    await store.vote(reply, alice, 1, "👍")
    await store.vote(reply, alice, -1, "👎")
    await store.vote(reply, bob, 1, "👍")
    assert await votes_on(store, reply) == [("alice", -1), ("bob", 1)]
    assert await store.reply_for(chat, "42") == reply
    assert not await store.unvote(reply, alice, source="👍")  # that reaction no longer counts
    assert await store.unvote(reply, alice, source="👎")
    assert await votes_on(store, reply) == [("bob", 1)]
    await store.close()


async def test_many_chats_write_at_once_through_two_connections(tmp_path):
    """The bot and a fine-tuning job each hold a connection; neither sees "database is locked"."""
    path = tmp_path / "db.sqlite3"
    first, second = await Store.open(path), await Store.open(path)

    async def chat_writer(store: Store, n: int) -> None:
        chat = await store.chat("p", f"chat{n}")
        user = await store.user("p", f"user{n}")
        for i in range(20):
            reply = await store.add_message(chat, user, "bot", f"r{i}", platform_ids=[f"{n}-{i}"])
            await store.vote(reply, user, 1, "👍")

    await asyncio.gather(*(chat_writer(s, n) for n in range(40)
                           for s in [first if n % 2 else second]))
    async with first.db.execute("SELECT COUNT(*), COUNT(DISTINCT chat_id) FROM messages") as c:
        assert await c.fetchone() == (800, 40)
    async with second.db.execute("SELECT COUNT(*) FROM feedback") as c:
        assert await c.fetchone() == (800,)
    await first.close()
    await second.close()


async def test_forget_leaves_no_trace_of_the_text_in_the_file(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = await Store.open(path)
    chat = await store.chat("p", "c")
    user = await store.user("p", "u", "Zebediah")
    asked = await store.add_message(chat, user, "user", "my pin is QX7-SECRET-991")
    await store.add_message(chat, user, "bot", "WHY QX7-SECRET-991", reply_to=asked,
                            trace={"memory": "QX7-SECRET-991"})
    await store.save_engine_state(chat, "eliza", {"memory": ["QX7-SECRET-991"]})
    await store.forget_user(user)
    await store.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("db.sqlite3")]
    for file in files:
        data = file.read_bytes()
        assert b"QX7-SECRET-991" not in data, file.name
        assert b"Zebediah" not in data, file.name


async def test_the_inbox_keeps_a_delivery_once_and_forgets_it_a_day_after_it_was_handled(
        tmp_path):
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        assert await store.receive("telegram", "7", {"message": {"text": "hi"}})
        assert not await store.receive("telegram", "7", {"message": {"text": "hi"}})  # again
        await store.replying("telegram", "7", ["11"])
        [kept] = await store.unhandled("telegram")
        assert (kept.key, kept.payload, kept.reply_ids) == ("7", {"message": {"text": "hi"}},
                                                           ["11"])
        await store.handled("telegram", "7")
        assert await store.unhandled("telegram") == []
        assert await store.forget_handled(time.time() - 86400) == 0  # handled just now
        assert await store.forget_handled(time.time() + 1) == 1
    finally:
        await store.close()


async def test_the_database_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        store = await Store.open(data / "db.sqlite3")
        await store.add_message(await store.chat("p", "c"), None, "user", "hello")
        await store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for file in data.iterdir():  # the database, and its -wal and -shm while they exist
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
