"""Failures that repeat are calm and visible: a backoff that one success does not reset, a
failure logged once a minute with its count, and a store that cannot write says since when.
End to end: the Telegram poller while another process holds the database's write lock."""

from __future__ import annotations

import logging

from bot.calm import Backoff, RepeatedFailure
from bot.store import connection
from tests.harness import running_bot, write_lock_held
from tests.telegram_bot import ALICE

WORDS = "one two three"


def test_one_success_takes_the_backoff_one_step_down_not_back_to_the_start():
    backoff = Backoff(first=0.2, most=8.0)
    assert [backoff.failed() for _ in range(4)] == [0.2, 0.4, 0.8, 1.6]
    backoff.succeeded()  # a fetch that worked between two failures
    assert backoff.failed() == 1.6
    for _ in range(10):
        backoff.succeeded()
    assert backoff.failed() == 0.2
    assert max(backoff.failed() for _ in range(20)) == 8.0


def test_a_repeated_failure_is_one_line_a_minute_with_its_count(caplog, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("bot.calm.time.monotonic", lambda: now[0])
    watch = RepeatedFailure(logging.getLogger("calm-test"), "the thing fails")
    caplog.set_level(logging.INFO, "calm-test")
    for _ in range(45):  # 45 failures in 10 s
        watch.failed(OSError("disk full"))
        now[0] += 10 / 45
    assert [r.exc_info is not None for r in caplog.records] == [True]  # the first, in full
    assert watch.since is not None and watch.count == 45
    now[0] += 60
    watch.failed(OSError("disk full"))
    assert "45 more times" in caplog.records[-1].getMessage()
    watch.succeeded()
    assert "works again after 46 failures" in caplog.records[-1].getMessage()
    assert watch.since is None and len(caplog.records) == 3


async def test_the_poller_backs_off_under_a_held_lock_logs_once_and_loses_nothing(
        tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 50)  # a held lock fails writes fast
    caplog.set_level(logging.WARNING)
    async with running_bot("telegram", tmp_path) as bot:
        store = bot.router.store
        chat = bot.fake.private(ALICE)
        assert store.cannot_write_since() is None
        fetched = len(bot.fake.calls_to("getUpdates"))
        async with write_lock_held(store.path):  # another process's writer
            bot.fake.say(chat, ALICE, WORDS)
            await bot.fake.wait_for(lambda: store.cannot_write_since() is not None,
                                    "the store failing to keep the update", 10)
            await bot.fake.wait_for(lambda: len(bot.fake.calls_to("getUpdates")) > fetched + 3,
                                    "a few more tries", 20)
        await bot.fake.wait_for(lambda: [m.get("text") for m in bot.fake.sent(chat)]
                                == [f"echo: {WORDS}"], "the message answered once", 30)
        assert store.cannot_write_since() is None
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]
    assert len([x for x in lines if "could not keep an update" in x]) == 1, lines
    assert len([x for x in lines if x.startswith("the store cannot write")]) == 1, lines
