"""/forget as a careful user checks it: a marker word written in a Telegram group, recalled by
ELIZA to someone else, exported for fine-tuning, its author's messages pruned by retention;
then /forget while another connection is reading, and every byte of every file under the data
directory is searched for the marker."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from bot.i18n import t
from finetune.export import export
from finetune.settings import load_settings
from tests.harness import running_bot
from tests.telegram_bot import ADA, ALICE, BOB

MARKER = "zqxwombat"  # a word nobody else writes; ELIZA shouts it as ZQXWOMBAT


def files_with_marker(folder: Path) -> list[str]:
    forms = (MARKER.encode(), MARKER.upper().encode(), MARKER.title().encode())
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and any(form in path.read_bytes() for form in forms):
            found.append(str(path.relative_to(folder)))
    return found


async def recall_alices_memory_to_bob(bot, group) -> str:
    await bot.reply_to(group, ADA, "/engine eliza")
    await bot.reply_to(group, ALICE, f"My sister {MARKER} lives in Bonn.")
    for line in ("Bullies.", "Well.", "Hm.", "Perhaps.", "So."):
        [reply] = await bot.reply_to(group, BOB, line)
        if MARKER.upper() in reply["text"]:
            return reply["text"]
    raise AssertionError("ELIZA never recalled the memory")


async def a_voted_transformer_reply_to_alice(router) -> None:
    chat = await router.store.find_chat("telegram", "-1001")
    alice = await router.store.user("telegram", str(ALICE.id))
    asked = await router.store.add_message(chat, alice, "user", f"what about {MARKER}?")
    reply = await router.store.add_message(chat, alice, "bot", f"{MARKER} sounds nice",
                                           reply_to=asked, engine="transformer")
    await router.store.vote(reply, await router.store.user("telegram", str(BOB.id)), 1, "👍")


async def test_forget_leaves_the_marker_in_no_file_under_the_data_directory(tmp_path):
    data = tmp_path / "data"
    async with running_bot("telegram", tmp_path, group_mode="always") as bot:
        group = bot.fake.group()
        recalled = await recall_alices_memory_to_bob(bot, group)
        assert "YOUR SISTER" in recalled  # Alice's words, said to Bob
        await a_voted_transformer_reply_to_alice(bot.router)
        # k_people = 1: one person's words are common enough for the export, which now holds
        # the marker (at the default of 3 it never would: tests/test_finetune_common.py)
        settings = replace(load_settings(tmp_path / "config.toml", str(data)), k_people=1)
        exported = await export(settings)
        assert MARKER in json.dumps(exported.kto + exported.heldout)
        await bot.router.store.db.execute(  # Alice's messages age past the retention limit
            "UPDATE messages SET created_at = 0 WHERE user_id = (SELECT id FROM users"
            " WHERE platform_user_id = ?) AND role = 'user'", (str(ALICE.id),))
        assert await bot.router.store.prune(time.time() - 86400) == 2
        assert files_with_marker(data)  # the memory, the export, the recalled reply

        reader = sqlite3.connect(data / "eliza2llm.sqlite3")
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM messages").fetchall()  # holds an old snapshot
        [answer] = await bot.reply_to(bot.fake.private(ALICE), ALICE, "/forget")
        assert t("en", "forgotten_wal_pending") in answer["text"]
        reader.close()
        await bot.router.store.wal_wiped()
        assert files_with_marker(data) == []
    assert files_with_marker(data) == []  # and after the bot closed the database


async def test_mydata_of_someone_with_200_messages_is_whole_json_with_memories(tmp_path):
    async with running_bot("telegram", tmp_path) as bot:
        chat = bot.fake.private(ALICE)
        await bot.reply_to(chat, ALICE, "/engine eliza")
        store, router = bot.router.store, bot.router
        stored = await store.chat("telegram", str(ALICE.id))
        alice = await store.user("telegram", str(ALICE.id))
        for n in range(200):
            asked = await store.add_message(stored, alice, "user", f"My dog number {n} barks.")
            await store.add_message(stored, alice, "bot", f"reply {n}", reply_to=asked,
                                    engine="eliza", trace={"keyword": "MY", "n": n})
        await bot.reply_to(chat, ALICE, f"My sister {MARKER} lives in Bonn.")
        await router.settle(5)
        document, answer = await bot.reply_to(chat, ALICE, "/mydata", count=2)
        assert document["caption"] == answer["text"] == t("en", "mydata_sent")
        [(_, name, content)] = bot.fake.uploads
        data = json.loads(content)
        assert name.endswith(".json")
        assert len([m for m in data["messages"] if m["role"] == "user"]) == 201
        assert {"keyword": "MY", "n": 7} in [m.get("trace") for m in data["messages"]]
        [memory] = data["engine_memory"]
        assert memory["engine"] == "eliza" and MARKER.upper() in json.dumps(memory["state"])
    assert not (tmp_path / "data" / "mydata").exists() or not any(
        (tmp_path / "data" / "mydata").iterdir())
