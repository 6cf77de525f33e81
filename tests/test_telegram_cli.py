"""`python -m bot telegram` as a user runs it, against a fake Bot API server set as base_url."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from tests.fake_telegram import FakeTelegram, Person
from tests.harness import ROOT, write_config

ALICE = Person(1, "Alice")


async def start_bot(fake: FakeTelegram, tmp_path: Path, token: str) -> asyncio.subprocess.Process:
    config = write_config(tmp_path / "mine.toml", '[bot]\ndefault_engine = "echo"\n'
                          f'[telegram]\nbase_url = "{fake.base_url}"\npoll_timeout = 1.0\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT), TELEGRAM_TOKEN=token,
               NO_PROXY="127.0.0.1,localhost")
    env.pop("DISCORD_TOKEN", None)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "telegram", "--config", str(config),
        "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_python_m_bot_telegram_answers_a_message(tmp_path):
    fake = await FakeTelegram().start()
    process = await start_bot(fake, tmp_path, fake.token)
    chat = fake.private(ALICE)
    try:
        await fake.wait_for(lambda: fake.calls_to("getUpdates"), "the bot to poll", timeout=30)
        fake.say(chat, ALICE, "hello from afar")
        await fake.wait_for(lambda: [m["text"] for m in fake.sent(chat)] == [
            "echo: hello from afar"], "the reply", timeout=15)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await fake.close()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
    with sqlite3.connect(tmp_path / "data" / "eliza2llm.sqlite3") as db:
        stored = db.execute("SELECT role, text, engine FROM messages ORDER BY id").fetchall()
    assert stored == [("user", "hello from afar", None), ("bot", "echo: hello from afar", "echo")]


async def test_a_refused_token_ends_with_one_clear_line_that_hides_it(tmp_path):
    fake = await FakeTelegram().start()
    try:
        process = await start_bot(fake, tmp_path, "999:WRONG-SECRET")
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await fake.close()
    message = stderr.decode()
    assert process.returncode == 2, message
    assert "TELEGRAM_TOKEN" in message and "BotFather" in message
    assert "WRONG-SECRET" not in message and "Traceback" not in message
