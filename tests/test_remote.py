"""The remote engine through the router, against the fake vLLM server in tests/fake_openai.py:
replies, /next, /why, adapters loaded on promotion, rollback and /adapter, a swap mid-reply."""

from __future__ import annotations

import asyncio

import pytest

from engines.adapter_serving import PROMPTS
from engines.base import Conversation
from tests.fake_openai import FakeOpenAI
from tests.remote_chat import add_adapters, last_version, promote, remote_chat, remote_toml, say


@pytest.fixture
async def fake():
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


async def test_a_reply_streams_with_the_local_engines_prompt_and_is_stored(serve, fake):
    async with remote_chat(serve, fake) as router:
        first = await say(router, "Hello there")
        assert first.final == "[tiny-base] Hello there"
        assert first.updates == ["[tiny-base]", "[tiny-base] Hello", "[tiny-base] Hello there"]
        await say(router, "/lang de")
        await say(router, "Wie geht es")
        asked = fake.requests[-1]
        system = (PROMPTS / "de.txt").read_text(encoding="utf-8").strip()
        assert asked["messages"] == [
            {"role": "system", "content": system},
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "[tiny-base] Hello there"},
            {"role": "user", "content": "Wie geht es"},
        ]
        assert asked["model"] == "tiny-base" and asked["stream"] is True
        assert asked["stream_options"] == {"include_usage": True}
        assert (asked["top_k"], asked["repetition_penalty"], asked["max_tokens"]) == (50, 1.1, 128)
        assert await last_version(router) == "base"


async def test_servers_that_reject_vllm_fields_get_none_and_completions_get_a_transcript(
        serve, fake):
    async with remote_chat(serve, fake, 'vllm_sampling = false\napi = "completions"\n') as router:
        assert (await say(router, "Hi you")).final == "[tiny-base] Hi you"
        asked = fake.requests[-1]
        assert "top_k" not in asked and "repetition_penalty" not in asked
        assert asked["prompt"].startswith("System: You are eliza2llm")
        assert asked["prompt"].endswith("User: Hi you\nAssistant:")


async def test_next_shows_the_servers_top_words_with_probabilities(serve, fake):
    async with remote_chat(serve, fake) as router:
        answer = (await say(router, "/next The weather is")).final
        assert answer.splitlines()[1:] == ["sunny  55.0%", "nice  20.0%", "cold  10.0%"]
        asked = fake.requests[-1]
        assert (asked["prompt"], asked["max_tokens"], asked["logprobs"]) == (
            "The weather is", 1, 5)


async def test_why_names_server_model_adapter_sampling_tokens_and_first_token_latency(
        serve, fake):
    async with remote_chat(serve, fake) as router:
        await say(router, "one two three")
        why = (await say(router, "/why")).final
        lines = dict(line.split(": ", 1) for line in why.splitlines()[1:])
        assert why.splitlines()[0] == "My last reply came from remote base."
        assert lines["server"] == fake.url and lines["model"] == "tiny-base"
        assert lines["adapter"] == "none"
        assert '"top_k": 50' in lines["sampling"] and '"temperature": 0.7' in lines["sampling"]
        system_words = len((PROMPTS / "en.txt").read_text(encoding="utf-8").split())
        assert (lines["tokens_in"], lines["tokens_out"]) == (str(system_words + 3), "4")
        assert float(lines["first_token_seconds"]) >= 0


async def test_a_promoted_adapter_is_loaded_on_the_server_and_rollback_goes_back(serve, fake):
    async with remote_chat(serve, fake) as router:
        await add_adapters(router, "a1", "a2")
        assert await promote(router, "a1") == "a1"
        assert fake.loras == {"a1": str(router.config.adapters_dir / "a1")}
        assert (await say(router, "hello")).final == "[a1] hello"
        assert await last_version(router) == "a1"
        assert await promote(router, "a2") == "a2"
        assert (await say(router, "hello")).final == "[a2] hello"
        assert "a1 serves again" in (await say(router, "/rollback")).final
        assert (await say(router, "hello")).final == "[a1] hello"
        assert [call for call in fake.lora_calls if call[0] == "load"] == [
            ("load", "a1"), ("load", "a2")]  # each loaded once


async def test_the_active_adapter_is_loaded_when_the_engine_starts(serve, fake):
    async with serve(remote_toml(fake.url)) as router:
        await add_adapters(router, "a1")
        await router.services.adapters.promote("a1", "a test")
        await say(router, "/engine remote")  # starts the engine: it asks which one is active
        assert fake.loras == {"a1": str(router.config.adapters_dir / "a1")}
        assert (await say(router, "hi")).final == "[a1] hi"


async def test_two_chats_pinned_to_different_adapters_are_answered_by_their_own(serve, fake):
    async with remote_chat(serve, fake, chats=("c1", "c2", "c3")) as router:
        await add_adapters(router, "a1", "a2")
        await promote(router, "a1")
        assert "a2" in (await say(router, "/adapter a2", chat="c2")).final
        await say(router, "/adapter base", chat="c3")
        replies = await asyncio.gather(*(say(router, "same words", chat=c)
                                         for c in ("c1", "c2", "c3")))
        assert [r.final for r in replies] == [
            "[a1] same words", "[a2] same words", "[tiny-base] same words"]
        assert [await last_version(router, c) for c in ("c1", "c2", "c3")] == ["a1", "a2", "base"]


async def test_a_pinned_adapter_that_cannot_be_loaded_falls_back_to_the_active_one(serve, fake):
    async with remote_chat(serve, fake) as router:
        await add_adapters(router, "a1", "gone")
        await promote(router, "a1")
        await say(router, "/adapter gone")
        (router.config.adapters_dir / "gone").rmdir()
        assert (await say(router, "hi")).final == "[a1] hi"
        assert await last_version(router) == "a1"


async def test_a_swap_while_a_reply_streams_finishes_it_with_the_adapter_it_began_with(
        serve, fake):
    async with remote_chat(serve, fake, chats=("c1", "c2")) as router:
        await add_adapters(router, "a1", "a2")
        await promote(router, "a1")
        fake.hold = asyncio.Event()
        streaming = asyncio.create_task(say(router, "slow words here"))
        await fake.streaming.wait()
        assert await promote(router, "a2") == "a2"  # while the a1 reply is mid-stream
        fake.hold.set()
        assert (await streaming).final == "[a1] slow words here"
        assert await last_version(router) == "a1"
        assert (await say(router, "next", chat="c2")).final == "[a2] next"


async def test_a_server_without_the_lora_api_serves_the_base_model_and_engines_says_so(
        serve):
    fake = await FakeOpenAI(lora_api=False).start()
    try:
        async with remote_chat(serve, fake) as router:
            await add_adapters(router, "a1")
            version = await promote(router, "a1")
            assert version.startswith("base (the server cannot load adapters")
            assert (await say(router, "hi")).final == "[tiny-base] hi"
            assert await last_version(router) == "base"
            engines = (await say(router, "/engines")).final
            assert "remote: ready (base (the server cannot load adapters" in engines
    finally:
        await fake.stop()


async def test_unused_adapters_beyond_max_adapters_are_unloaded(serve, fake):
    async with remote_chat(serve, fake, "max_adapters = 2\n") as router:
        await add_adapters(router, "a1", "a2", "a3")
        for adapter_id in ("a1", "a2", "a3"):
            await promote(router, adapter_id)
        assert sorted(fake.loras) == ["a2", "a3"]
        assert ("unload", "a1") in fake.lora_calls


async def test_closing_a_reply_closes_the_stream_so_the_server_can_abort(serve, fake):
    async with remote_chat(serve, fake) as router:
        engine = await router.engines.get("remote")
        fake.delay = 0.05
        deltas = engine.reply(Conversation("console:c9", "many words " * 20))
        assert await anext(deltas) == "[tiny-base]"
        await deltas.aclose()
        for _ in range(100):  # the server notices at its next write
            if fake.aborted:
                break
            await asyncio.sleep(0.05)
        assert fake.aborted == 1


async def test_engines_and_why_show_the_server_url_without_its_user_and_password(serve, fake):
    url = fake.url.replace("://", "://course:hunter2-pass@")
    async with serve(remote_toml(url)) as router:
        assert "remote" in (await say(router, "/engine remote")).final
        await say(router, "one two three")
        engines = (await say(router, "/engines")).final
        why = (await say(router, "/why")).final
        assert f"server: {fake.url}" in why.splitlines()
        assert fake.url in engines
        # a reply stored before URLs were shown so: its trace still holds the credentials
        chat = await router.store.chat("console", "c1")
        me = await router.store.user("console", "me", "me")
        await router.store.add_message(chat, me, "bot", "old", engine="remote",
                                       engine_version="base", trace={"server": url})
        old_why = (await say(router, "/why")).final
    for shown in (engines, why, old_why):
        assert "hunter2" not in shown and "course:" not in shown, shown
    assert f"server: {fake.url}" in old_why.splitlines()
