"""Every fault of an OpenAI-compatible server ends one reply with the usual apology (its cause
one line in /why), and the bot goes on answering: the fake vLLM of tests/fake_openai.py."""

from __future__ import annotations

import socket

import pytest

from bot.i18n import t
from tests.fake_openai import FakeOpenAI
from tests.remote_chat import remote_chat, remote_toml, say

APOLOGY = t("en", "apology")


@pytest.fixture
async def fake():
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


@pytest.mark.parametrize("fault", ["429", "500"])
async def test_one_429_or_500_is_retried_and_the_reply_arrives(serve, fake, fault):
    async with remote_chat(serve, fake) as router:
        fake.faults = [fault]
        assert (await say(router, "hello there")).final == "[tiny-base] hello there"
        assert len(fake.requests) == 2  # the failed one and its retry


@pytest.mark.parametrize(("faults", "cause"), [
    (["429", "429"], "the server is busy (429) and stayed busy through the retries"),
    (["500", "500"], "the server answered 500: engine died"),
    (["cut"], "the stream was cut mid-reply"),
    (["malformed"], "the server sent a malformed chunk"),
    (["error"], "the server reported an error: out of KV cache"),
    (["hang"], "the server did not answer in time (timeout"),  # no retry: the time is up
    (["keepalive"], "the server stopped sending mid-reply (timeout: no token for 1 s)"),
])
async def test_a_fault_ends_the_reply_with_an_apology_and_the_bot_answers_on(
        serve, fake, faults, cause):
    async with remote_chat(serve, fake, "timeout = 1.0\n") as router:
        fake.faults = list(faults)
        assert (await say(router, "hello there")).final == APOLOGY
        assert cause in (await say(router, "/why")).final
        assert (await say(router, "still there?")).final == "[tiny-base] still there?"
        assert (await say(router, "/engine echo")).final.startswith("This chat now")


async def test_a_hung_server_is_waited_for_once_not_once_per_retry(serve, fake):
    """`timeout` bounds the wait for the first token, the client's retries included: a 429
    is retried within it, but a request that hangs is not followed by another."""
    async with remote_chat(serve, fake, "timeout = 0.4\nmax_retries = 5\n") as router:
        fake.faults = ["429"] + ["hang"] * 5
        assert (await say(router, "hello there")).final == APOLOGY
        assert len(fake.requests) == 2  # the 429 and its retry, which hung: no third
        assert "retries included" in (await say(router, "/why")).final
        fake.faults.clear()
        assert (await say(router, "still there?")).final == "[tiny-base] still there?"


async def test_the_key_comes_from_the_environment_and_a_wrong_one_is_a_clear_401(
        serve, monkeypatch):
    fake = await FakeOpenAI(api_key="sekrit").start()
    try:
        monkeypatch.setenv("FAKE_VLLM_KEY", "sekrit")
        async with remote_chat(serve, fake, 'api_key_env = "FAKE_VLLM_KEY"\n') as router:
            assert (await say(router, "hi")).final == "[tiny-base] hi"
            fake.api_key = "rotated"
            assert (await say(router, "hi")).final == APOLOGY
            assert "the server refused the API key (401)" in (await say(router, "/why")).final
            fake.api_key = "sekrit"
            assert (await say(router, "hi")).final == "[tiny-base] hi"
    finally:
        await fake.stop()


async def test_a_key_variable_that_is_not_set_makes_the_engine_unavailable(serve, fake):
    async with serve(remote_toml(fake.url, 'api_key_env = "NO_SUCH_KEY_VAR"\n')) as router:
        answer = (await say(router, "/engine remote")).final
        assert answer == ("The remote engine is unavailable: [engines.remote] api_key_env: set "
                          "NO_SUCH_KEY_VAR in the environment (the server's API key)")
        assert (await say(router, "hi")).final == "echo: hi"


async def test_a_server_that_is_down_is_shown_by_engines_and_the_chat_is_told(serve):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with serve(remote_toml(f"http://127.0.0.1:{port}/v1")) as router:
        answer = (await say(router, "/engine remote")).final
        assert answer.startswith("The remote engine is unavailable: "
                                 f"http://127.0.0.1:{port}/v1: cannot reach the server")
        engines = (await say(router, "/engines")).final
        line = next(x for x in engines.splitlines() if "remote" in x)
        assert "cannot reach the server" in line and "\n" not in line
        assert (await say(router, "hi")).final == "echo: hi"


async def test_a_server_that_restarts_without_our_adapters_gets_them_loaded_again(serve, fake):
    from tests.remote_chat import add_adapters, promote

    async with remote_chat(serve, fake) as router:
        await add_adapters(router, "a1")
        await promote(router, "a1")
        fake.loras.clear()  # vLLM restarted: its adapters are gone
        engine = await router.engines.get("remote")
        await engine.health.check()
        assert (await say(router, "hi")).final == "[a1] hi"
        assert fake.lora_calls.count(("load", "a1")) == 2
