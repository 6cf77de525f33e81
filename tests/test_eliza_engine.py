"""ELIZA inside the bot: the router's state per chat, /why, /reset, /lang and own scripts."""

from __future__ import annotations

from engines.base import Conversation, EngineSetup
from engines.eliza.engine import ElizaEngine, ElizaOptions
from tests.eliza_helpers import FRAME, PAPER
from tests.harness import say


async def test_the_router_keeps_each_chats_eliza_apart(serve):
    async with serve("[policy]\nrate_per_minute = 0\n") as router:
        for chat in ("c1", "c2"):
            assert "HOW DO YOU DO" in (await say(router, "/engine eliza", chat)).final
        replies = {"c1": [], "c2": []}
        for text, _ in PAPER:
            replies["c1"].append((await say(router, text, "c1")).final)
            replies["c2"].append((await say(router, "Well, my dog bit me.", "c2")).final)
        assert replies["c1"] == [reply for _, reply in PAPER]
        assert replies["c2"][:2] == ["YOUR DOG BIT YOU", "WHY DO YOU SAY YOUR DOG BIT YOU"]


async def test_why_explains_the_last_eliza_reply(serve):
    async with serve() as router:
        await say(router, "/engine eliza")
        await say(router, "He says I'm depressed much of the time.")
        why = (await say(router, "/why")).final
        assert why.startswith("My last reply came from eliza doctor.en@")
        for line in ["keyword: I'M", "path: I'M -> I", "memory: false",
                     "decomposition: 0 YOU ARE 0 (*SAD UNHAPPY DEPRESSED SICK) 0",
                     "reassembly: I AM SORRY TO HEAR YOU ARE 5"]:
            assert line in why.splitlines()


async def test_reset_starts_the_conversation_over(serve):
    async with serve() as router:
        await say(router, "/engine eliza")
        first = [(await say(router, "I am sad")).final for _ in range(2)]
        assert first[0] != first[1]  # the reassemblies cycle
        await say(router, "/reset")
        assert (await say(router, "I am sad")).final == first[0]


async def test_the_chats_language_picks_the_script(serve):
    async with serve() as router:
        await say(router, "/lang de")
        assert "BITTE SCHILDERN SIE MIR IHR PROBLEM" in (await say(router, "/engine eliza")).final
        assert (await say(router, "Männer sind alle gleich.")).final == "IN WELCHER WEISE"
        await say(router, "/lang en")
        assert (await say(router, "Men are all alike.")).final == "IN WHAT WAY"


async def test_own_scripts_replace_a_language_and_show_in_the_version(tmp_path):
    path = tmp_path / "echoes.en"
    path.write_text(FRAME.replace("HELLO", "GOOD DAY"), encoding="utf-8")
    engine = ElizaEngine(ElizaOptions(scripts={"en": str(path)}), EngineSetup(tmp_path))
    assert not engine.info().ready
    await engine.start()
    assert engine.greeting("en") == "GOOD DAY"
    assert engine.greeting("de").startswith("WIE GEHT ES IHNEN")
    assert "echoes.en@" in engine.info().version and "doctor.de@" in engine.info().version
    conv = Conversation(chat_key="x", text="anything", lang="en")
    assert [d async for d in engine.reply(conv)] == ["NONE ONE"]
    assert conv.state == {"echoes.en": {"counter": 2, "next_reassembly": {"NONE:1": 1},
                                        "memories": []}}


async def test_memories_beyond_the_limit_forget_the_oldest(tmp_path):
    engine = ElizaEngine(ElizaOptions(memory_limit=2), EngineSetup(tmp_path))
    await engine.start()
    conv = Conversation(chat_key="x", text="", lang="en")
    for text in ["My cat is here.", "My dog is here.", "My fish is here."]:
        conv.text = text
        [d async for d in engine.reply(conv)]
    memories = conv.state["doctor.en"]["memories"]
    assert [m.split()[-3] for m in memories] == ["DOG", "FISH"]
