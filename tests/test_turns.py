"""Chats take turns in the transformer's batch (engines/transformer/turns.py): one chat's burst
waits behind its own requests, not in front of another chat's reply."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import pytest

from engines.base import Conversation
from engines.transformer.turns import Turns
from tests.tiny_model import greedy_engine


@dataclass(eq=False)
class Req:
    chat: str
    name: str


def names(requests) -> list[str]:
    return [r.name for r in requests]


def test_chats_take_turns_and_the_last_row_waits_for_a_chat_with_none_running():
    turns = Turns()
    burst = [Req("a", f"a{i}") for i in range(4)]
    b, c = Req("b", "b0"), Req("c", "c0")
    assert names(turns.pick([*burst, b, c], 8, [])) == ["a0", "b0", "c0", "a1", "a2", "a3"]
    first = turns.pick(burst, 3, [])
    assert names(first) == ["a0", "a1"]  # the third row is kept for another chat
    turns.served(first)
    assert names(turns.pick([*burst[2:], b], 3, first)) == ["b0"]  # b starts at once
    turns.served([b])
    # a was served before b, so a goes first now; c, never served, before both
    assert names(turns.pick([burst[2], Req("b", "b1"), c], 8, [])) == ["c0", "a2", "b1"]
    assert turns.pick([burst[2]], 1, []) == [burst[2]]  # an empty batch takes anyone


@pytest.fixture
async def engine(root, tmp_path):
    async with greedy_engine(root, tmp_path, max_new_tokens=24) as engine:
        engine.worker.max_batch = 2
        yield engine


async def test_a_chats_burst_does_not_hold_back_another_chats_reply(engine):
    finished: list[str] = []
    submitted = []
    submit = engine.worker.submit

    def recording(*args, **kwargs):
        submitted.append(request := submit(*args, **kwargs))
        return request

    engine.worker.submit = recording

    async def ask(chat: str, text: str) -> None:
        await _reply(engine, f"test:{chat}", text)
        finished.append(chat)

    burst = [asyncio.create_task(ask("a", f"question {i}")) for i in range(4)]
    # The burst is queued and its first reply is generating (a reply streams whole sentences,
    # so its first text may come only at its end: ask the worker's requests instead).
    while len(submitted) < 4 or not any(r.first_token_at for r in submitted):
        await asyncio.sleep(0.005)
    await asyncio.gather(*burst, ask("b", "my one question"))
    # First come, first served, b would wait for all four: two rows running, two queued.
    assert finished.index("b") <= 1, finished


async def test_a_chats_long_probe_runs_one_scoring_pass_per_step_beside_another_chats_reply(
    engine, monkeypatch
):
    """Between two decode steps of b's reply, a's /probe runs one scoring pass at most (its
    context, then its continuations as many a pass as the chunk holds: here a few)."""
    passes = recorded_passes(engine, monkeypatch)
    engine.worker.prefill_chunk = 8  # two or three continuations a pass
    running = asyncio.create_task(_reply(engine, "test:b", "my one question"))
    while "step" not in passes:
        await asyncio.sleep(0.005)
    alternatives = [f"word{i}" for i in range(12)]
    scores = await engine.probe("The nurse said that", alternatives, "en", chat="test:a")
    await running
    assert len(scores) == 12 and passes.count("score") >= 5
    during = between_steps(passes)
    assert "score" in during and "score, score" not in ", ".join(during), during


def test_a_long_chat_is_rendered_a_few_times_not_once_per_turn(root, monkeypatch):
    """The prompt of a long message after long turns is found by bisection (it runs off the
    event loop too); the turns it keeps are the newest that fit, as before."""
    from transformers import AutoTokenizer

    from engines.base import Turn
    from engines.transformer import prompt
    from tests.tiny_model import tiny_model_dir

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(root))
    real, renders = prompt.encode, []
    monkeypatch.setattr(prompt, "encode", lambda tok, chat: renders.append(1) or real(tok, chat))
    turns = [Turn("user" if i % 2 == 0 else "bot", f"turn{i} " + "words " * 40) for i in range(32)]
    ids, kept = prompt.build(tokenizer, "Be kind.", turns, "the question", budget=400)
    assert 0 < kept < 32 and len(ids) <= 400 and len(renders) <= 1 + 6
    longer = real(tokenizer, prompt.messages("Be kind.", turns[31 - kept:], "the question"))
    assert len(longer) > 400  # one turn more would not fit
    renders.clear()
    ids, kept = prompt.build(tokenizer, "Be kind.", turns, "start " + "blah " * 2000 + "end",
                             budget=400)
    assert kept == 0 and len(ids) <= 400 and "end" in tokenizer.decode(ids)
    assert len(renders) <= 1 + 6 + 4


LONG = " ".join(["the cat sat on the mat and looked at the dog"] * 12)  # ~130 tokens


async def test_two_chats_long_probes_run_one_reading_pass_per_step_together(engine, monkeypatch):
    """One person's two chats each /probe a long context: between two decode steps of another
    chat's reply, one reading pass runs, not one per chat (two passes a step made every step
    three passes long for everyone)."""
    passes = recorded_passes(engine, monkeypatch, prefill="read", score="read")
    engine.worker.prefill_chunk = 16  # the context in ~9 passes each
    running = asyncio.create_task(_reply(engine, "test:b", "my one question"))
    while "step" not in passes:
        await asyncio.sleep(0.005)
    probes = [engine.probe(LONG, ["mat", "dog"], "en", chat=f"test:a{i}") for i in range(2)]
    scores = await asyncio.gather(*probes)
    await running
    assert all(len(s) == 2 for s in scores) and passes.count("read") >= 16
    during = between_steps(passes)
    assert "read" in during and "read, read" not in ", ".join(during), during


async def test_a_newcomers_short_prompt_is_read_beside_a_long_one_under_way(engine):
    """A long prompt's prefill takes many passes; a chat that asks meanwhile gets its first
    token before the long one does, not after the long prefill is done."""
    engine.worker.prefill_chunk = 4  # the long prompt: ~35 passes
    worker = engine.worker
    long_request = worker.submit(engine._encode(LONG), max_new_tokens=2, chat="long")
    while not worker._filling:
        await asyncio.sleep(0.001)
    short_request = worker.submit(engine._encode("hello"), max_new_tokens=2, chat="new")
    for request in (long_request, short_request):
        async for _ in request.deltas():
            pass
    assert short_request.first_token_at < long_request.first_token_at


def recorded_passes(engine, monkeypatch, prefill: str = "prefill",
                    score: str = "score") -> list[str]:
    """The worker's passes as they run: "step" (decode), `prefill` (a prompt read), `score`
    (a /probe pass: each selects its adapter first)."""
    passes: list[str] = []
    forward, select = engine.adapters.forward, engine.adapters.select

    def recording_forward(adapters, **inputs):
        passes.append("step" if inputs["input_ids"].shape[1] == 1 else prefill)
        return forward(adapters, **inputs)

    def recording_select(adapter):
        passes.append(score)
        return select(adapter)

    monkeypatch.setattr(engine.adapters, "forward", recording_forward)
    monkeypatch.setattr(engine.adapters, "select", recording_select)
    return passes


def between_steps(passes: list[str]) -> list[str]:
    """The passes from the first decode step to the last."""
    return passes[passes.index("step"):len(passes) - passes[::-1].index("step")]


async def _reply(engine, chat: str, text: str) -> None:
    async with contextlib.aclosing(engine.reply(Conversation(chat, text))) as stream:
        async for _ in stream:
            pass
