"""What replies read is kept in memory (each chat's last turns and engine state) and what they
leave is written in one shared transaction: the turns an engine sees are always the stored
history, whatever deletes or hides part of it; state is written only when it changed and never
written back after /forget; one failing write in a shared transaction takes no other down."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.store import Exchange
from tests.harness import rows, say

LIMIT = 4


async def assert_cache_is_the_history(router) -> None:
    store = router.store
    for chat_id in ("c1", "c2"):
        chat = await store.chat("test", chat_id)
        seen = (await store.recall(chat, "echo", LIMIT)).turns
        assert seen == await store.history(chat, LIMIT), chat_id


async def test_the_turns_an_engine_sees_are_the_stored_history_whatever_happens(serve):
    steps = [
        ("hello there", "c1", "u1"), ("and you", "c1", "u2"), ("other chat", "c2", "u1"),
        ("more", "c1", "u1"), ("/reset", "c1", "u1"), ("after the reset", "c1", "u2"),
        ("/optout", "c1", "u2"), ("hidden words", "c1", "u2"), ("seen words", "c1", "u1"),
        ("/optin", "c2", "u2"), ("back again", "c1", "u2"), ("/forget", "c2", "u1"),
        ("fresh start", "c1", "u1"), ("again in c2", "c2", "u2"),
    ]
    async with serve(f"history_turns = {LIMIT}\n") as router:
        for text, chat, user in steps:
            await say(router, text, chat=chat, user=user)
            await assert_cache_is_the_history(router)
        chat = await router.store.chat("test", "c1")
        user = await router.store.user("test", "u1")
        await router.store.add_message(chat, user, "user", "added by a command")
        await assert_cache_is_the_history(router)
        await say(router, "after the command", chat="c1")
        await router.store.prune(time.time() + 1)  # retention: every message is too old now
        await assert_cache_is_the_history(router)
        assert (await router.store.history(chat, LIMIT)) == []
        sink = await say(router, "the first after retention", chat="c1")
        assert sink.final == "echo: the first after retention"
        await assert_cache_is_the_history(router)
        assert len(await router.store.history(chat, LIMIT)) == 2


async def count_state_writes(router) -> None:
    await router.store.db.execute("CREATE TEMP TABLE state_writes (n INTEGER)")
    for change in ("INSERT", "UPDATE"):
        await router.store.db.execute(
            f"CREATE TEMP TRIGGER count_state_{change.lower()}s AFTER {change} ON engine_state"
            " BEGIN INSERT INTO state_writes VALUES (1); END")


async def test_engine_state_is_written_when_it_changed_and_only_then(serve):
    async with serve() as router:
        await count_state_writes(router)
        for n in range(3):  # the echo engine counts turns: its state changes every time
            await say(router, f"m{n}")
        assert await rows(router, "SELECT COUNT(*) FROM state_writes") == [(3,)]
        store = router.store
        chat, user = await store.chat("test", "c1"), await store.user("test", "u1")
        recalled = await store.recall(chat, "echo", LIMIT)
        await store.add_exchange(Exchange(chat, user, "same", "same", "echo", "echo-1", recalled))
        assert await rows(router, "SELECT COUNT(*) FROM state_writes") == [(3,)]  # unchanged
        recalled.state["turns"] = 99
        await store.add_exchange(Exchange(chat, user, "new", "new", "echo", "echo-1", recalled))
        assert await rows(router, "SELECT COUNT(*) FROM state_writes") == [(4,)]
        assert await store.engine_state(chat, "echo") == {"turns": 99}


async def test_a_reply_under_way_during_forget_does_not_write_the_state_back(serve):
    async with serve() as router:
        await say(router, "my secret is 42")
        store = router.store
        chat, user = await store.chat("test", "c1"), await store.user("test", "u1")
        recalled = await store.recall(chat, "echo", LIMIT)  # a reply starts...
        recalled.state["memory"] = "my secret is 42"
        await store.forget_user(user)  # ...the person is forgotten meanwhile...
        await store.add_exchange(Exchange(chat, user, None, None, "echo", "echo-1", recalled))
        assert await rows(router, "SELECT COUNT(*) FROM engine_state") == [(0,)]  # ...not back
        assert await store.engine_state(chat, "echo") == {}


async def test_one_failing_write_in_a_shared_transaction_takes_no_other_down(serve):
    async with serve() as router:
        store = router.store
        exchanges = []
        for n in range(4):
            chat = await store.chat("test", f"chat{n}")
            user = await store.user("test", f"user{n}")
            recalled = await store.recall(chat, "echo", LIMIT)
            exchanges.append(Exchange(chat, user, f"q{n}", f"a{n}", "echo", "echo-1", recalled,
                                      platform_ids=[f"r{n}"]))
        exchanges[2].user.id = 10**9  # no such person: the foreign key fails this one write
        outcomes = await asyncio.gather(*(store.add_exchange(x) for x in exchanges),
                                        return_exceptions=True)
        assert [isinstance(o, Exception) for o in outcomes] == [False, False, True, False]
        stored = await rows(router, "SELECT text FROM messages ORDER BY id")
        assert sorted(t for (t,) in stored) == ["a0", "a1", "a3", "q0", "q1", "q3"]
        assert await rows(router, "SELECT COUNT(*) FROM message_refs") == [(3,)]
        with pytest.raises(Exception, match="FOREIGN KEY"):
            raise outcomes[2]


async def test_a_state_that_is_not_json_loses_the_state_not_the_messages(serve, caplog):
    async with serve() as router:
        store = router.store
        chat, user = await store.chat("test", "c1"), await store.user("test", "u1")
        recalled = await store.recall(chat, "echo", LIMIT)
        recalled.state["seen"] = {"a set"}  # an engine's bug
        await store.add_exchange(Exchange(chat, user, "q", "a", "echo", "echo-1", recalled))
        assert await rows(router, "SELECT role, text FROM messages ORDER BY id") == [
            ("user", "q"), ("bot", "a")]
        assert await rows(router, "SELECT COUNT(*) FROM engine_state") == [(0,)]
        assert "not JSON" in caplog.text
