"""The conversation printed in Weizenbaum's 1966 paper, replayed word for word."""

from __future__ import annotations

import json

from engines.base import Conversation, EngineSetup
from engines.eliza.engine import ElizaEngine, ElizaOptions
from tests.eliza_helpers import PAPER, Chat, doctor
from tests.harness import ROOT, run_console


def test_the_paper_conversation_through_one_state():
    chat = Chat(doctor("en"))
    assert [chat.say(text) for text, _ in PAPER] == [reply for _, reply in PAPER]


def test_bullies_recalls_the_boyfriend_memory_at_the_fourth_count():
    chat = Chat(doctor("en"))
    traces = [chat.answer(text).trace for text, _ in PAPER]
    assert traces[2]["remembered"] == PAPER[-1][1]  # "Well, my boyfriend ..." chose form 4
    assert [t["counter"] for t in traces][-4:] == [1, 2, 3, 4]
    assert traces[-1]["memory"] is True and traces[-1]["keystack"] == []
    assert not any(t["memory"] for t in traces[:-1])


async def test_the_paper_conversation_through_the_engine_with_stored_json_state(tmp_path):
    engine = ElizaEngine(ElizaOptions(), EngineSetup(data_dir=tmp_path))
    await engine.start()
    assert engine.greeting("en") == "HOW DO YOU DO.  PLEASE TELL ME YOUR PROBLEM"
    stored: dict = {}
    for text, expected in PAPER:
        conv = Conversation(chat_key="test:1", text=text, lang="en", state=stored)
        reply = "".join([delta async for delta in engine.reply(conv)])
        assert reply == expected
        stored = json.loads(json.dumps(conv.state))  # as the router stores it
    assert conv.trace["memory"] is True
    assert conv.version.startswith("doctor.en@")


def test_the_paper_conversation_through_the_console(tmp_path):
    process = run_console(["console", "--data-dir", str(tmp_path / "data")],
                          [text for text, _ in PAPER], cwd=ROOT)
    assert process.returncode == 0, process.stderr
    assert process.stdout.splitlines() == [reply for _, reply in PAPER]
