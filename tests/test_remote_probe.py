"""/probe on the remote engine against the fake vLLM server: the whole continuation's
log-probability from the prompt's scores (echo on /v1/completions), under the chat's adapter;
a server that gives no prompt scores is named as the reason."""

from __future__ import annotations

import math

import pytest

from bot.commands.lesson import probe_lines
from bot.i18n import t
from engines.remote.probe import NO_ECHO
from tests.fake_openai import FakeOpenAI, echo_logprob
from tests.remote_chat import add_adapters, promote, remote_chat, say

CONTEXT = "The doctor said that"
CONTINUATIONS = ["he", "she", "went home"]


@pytest.fixture
async def fake():
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


def expected_logprob(continuation: str) -> float:
    """The fake scores each word of the prompt on its own: the sum over the continuation's."""
    return sum(echo_logprob(word) for word in continuation.split())


async def test_probe_sums_the_servers_scores_of_the_whole_continuation(serve, fake):
    async with remote_chat(serve, fake) as router:
        answer = (await say(router, f"/probe {CONTEXT} | {' | '.join(CONTINUATIONS)}")).final
    expected = [expected_logprob(c) for c in CONTINUATIONS]
    assert expected == [math.log(1 / 3), math.log(1 / 4), 2 * math.log(1 / 5)]
    assert answer.split("\n") == [
        t("en", "probe_header", text=CONTEXT, engine="remote", version="base"),
        *probe_lines(CONTINUATIONS, expected)]
    assert "she  2.5e-01  0.75x" in answer
    asked = [r for r in fake.requests if r.get("echo")]
    assert sorted(r["prompt"] for r in asked) == sorted(f"{CONTEXT} {c}" for c in CONTINUATIONS)
    assert {(r["model"], r["logprobs"], r["max_tokens"]) for r in asked} == {("tiny-base", 1, 1)}


async def test_probe_asks_the_adapter_that_serves(serve, fake):
    async with remote_chat(serve, fake) as router:
        await add_adapters(router, "a1")
        await promote(router, "a1")
        answer = (await say(router, f"/probe {CONTEXT} | he | she")).final
    assert answer.startswith(t("en", "probe_header", text=CONTEXT, engine="remote",
                               version="a1"))
    assert {r["model"] for r in fake.requests if r.get("echo")} == {"a1"}


async def test_a_server_without_prompt_scores_is_named_and_an_empty_context_refused(
        serve, fake):
    fake.prompt_logprobs = False
    async with remote_chat(serve, fake) as router:
        answer = (await say(router, f"/probe {CONTEXT} | he | she")).final
        assert answer == t("en", "engine_unavailable", engine="remote", reason=NO_ECHO)
        fake.prompt_logprobs = True
        empty = (await say(router, "/probe | he | she")).final
    assert empty == t("en", "engine_unavailable", engine="remote",
                      reason="a served model scores a continuation only after some context")
