"""Chunked prefill (engines/transformer/chunks.py): a long prompt is read over several passes,
with the running batch's decode steps between them, and every reply is what it was whole."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import torch

from engines.base import Conversation
from engines.transformer.chunks import columns_per_pass
from tests.tiny_model import greedy_engine

LONG = " ".join(["the cat sat on the mat and looked at the dog"] * 12)  # ~130 tokens


@pytest.fixture
async def engine(root, tmp_path):
    async with greedy_engine(root, tmp_path, max_new_tokens=40) as engine:
        yield engine


async def ask(engine, text: str) -> str:
    async with contextlib.aclosing(engine.reply(Conversation("test:c", text))) as stream:
        return "".join([delta async for delta in stream])


def passes(engine, monkeypatch) -> list[tuple[int, int]]:
    """(rows, columns) of every forward pass from now on; a decode pass is 1 column wide."""
    real, seen = engine.adapters.forward, []

    def spy(adapters, **inputs):
        seen.append(tuple(inputs["input_ids"].shape))
        return real(adapters, **inputs)

    monkeypatch.setattr(engine.adapters, "forward", spy)
    return seen


def first_logits(monkeypatch) -> list[torch.Tensor]:
    from engines.transformer import worker as worker_module

    real, first = worker_module.next_tokens, []

    def spy(logits, seen, sampling, generator=None):
        first.append(logits.clone())
        return real(logits, seen, sampling, generator)

    monkeypatch.setattr(worker_module, "next_tokens", spy)
    return first


def test_a_pass_holds_at_most_the_chunk_and_always_one_column():
    assert columns_per_pass(1, 256) == 256
    assert columns_per_pass(4, 256) == 64
    assert columns_per_pass(3, 256) == 85
    assert columns_per_pass(512, 256) == 1


async def test_a_long_prompt_read_in_chunks_gives_the_reply_and_logits_of_one_pass(
    engine, monkeypatch
):
    logits = first_logits(monkeypatch)
    whole = await ask(engine, LONG)  # one pass: 256 tokens hold it
    engine.worker._prefixes.clear()
    engine.worker.prefill_chunk = 16
    widths = passes(engine, monkeypatch)
    steps = len(logits)  # one per token of the first reply
    chunked = await ask(engine, LONG)
    prefill = [columns for rows, columns in widths if columns > 1]
    assert len(prefill) >= 8 and max(prefill) <= 16  # the whole prompt, 16 columns at a time
    assert chunked == whole
    assert torch.allclose(logits[steps], logits[0], atol=1e-4)  # each reply's first token


async def test_the_running_batch_takes_a_step_between_two_chunks(engine, monkeypatch):
    await ask(engine, "warm")  # the system prompt's beginning is kept from here on
    engine.worker.prefill_chunk = 16
    widths = passes(engine, monkeypatch)
    running = asyncio.ensure_future(ask(engine, "hello"))
    while not any(columns == 1 for _, columns in widths):  # "hello" is decoding
        await asyncio.sleep(0.005)
    widths.clear()
    long = await ask(engine, LONG)
    hello = await running
    chunks = [i for i, (rows, columns) in enumerate(widths) if columns > 1]
    assert len(chunks) >= 6 and long and hello
    # between two chunks of the long prompt, "hello" (still running) takes its next step
    assert all(widths[i + 1] == (1, 1) for i in chunks[:-1])


def whole_pass_logprob(engine, context: list[int], continuation: list[int]) -> float:
    """ln p(continuation | context) from one plain forward pass over both (no cache, no chunk)."""
    model = engine.adapters.model
    with torch.no_grad():
        logits = model(torch.tensor([context + continuation])).logits[0].float()
    logp = torch.log_softmax(logits[len(context) - 1:-1], dim=-1)
    return float(logp.gather(1, torch.tensor(continuation)[:, None]).sum())


async def test_probe_reads_its_context_in_chunks_and_scores_as_one_plain_pass(
    engine, monkeypatch
):
    options = ["mat", "dog and the cat", "purple elephant of the mountains"]
    engine.worker.prefill_chunk = 16
    widths = passes(engine, monkeypatch)
    got = await engine.probe(LONG, options, "en")
    context = engine._encode(LONG)
    expected = [whole_pass_logprob(engine, context, engine._encode(" " + o)) for o in options]
    assert got == pytest.approx(expected, abs=1e-3) and len(set(got)) == 3
    reads = [columns for rows, columns in widths if rows == 1]
    assert len(reads) >= 8 and max(reads) <= 16  # the context, 16 tokens a pass
    assert widths[-1][0] == 3  # then the three continuations together, in one pass


async def test_a_long_probe_takes_turns_with_a_running_reply(engine, monkeypatch):
    await ask(engine, "warm")
    engine.worker.prefill_chunk = 16
    widths = passes(engine, monkeypatch)
    running = asyncio.ensure_future(ask(engine, "hello"))
    while not any(columns == 1 for _, columns in widths):
        await asyncio.sleep(0.005)
    widths.clear()
    await engine.probe(LONG, ["mat", "dog"], "en")
    await engine.next_words(LONG, "en")
    await running
    reads = [i for i, (rows, columns) in enumerate(widths) if columns > 1]
    assert len(reads) >= 12  # /probe's context and /next's, 16 tokens a pass
    # "hello" (running all along) takes its step after each of them, the last two aside
    assert sum(1 for i in reads[:-1] if widths[i + 1] == (1, 1)) >= len(reads) - 2
