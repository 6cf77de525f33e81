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
    """(rows, columns) of every forward pass from now on, replies' and scoring's; a decode
    pass is 1 column wide."""
    from engines.transformer import scoring

    real, real_scoring, seen = engine.adapters.forward, scoring._pass, []

    def spy(adapters, **inputs):
        seen.append(tuple(inputs["input_ids"].shape))
        return real(adapters, **inputs)

    def spy_scoring(worker, adapter, keep, input_ids, attention_mask, **cached):
        seen.append(tuple(input_ids.shape))
        return real_scoring(worker, adapter, keep, input_ids, attention_mask, **cached)

    monkeypatch.setattr(engine.adapters, "forward", spy)
    monkeypatch.setattr(scoring, "_pass", spy_scoring)
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
    context = engine._encode(LONG)
    expected = [whole_pass_logprob(engine, context, engine._encode(" " + o)) for o in options]
    widths = passes(engine, monkeypatch)
    engine.worker.prefill_chunk = 4096
    whole = await engine.probe(LONG, options, "en")
    assert [rows for rows, _ in widths] == [1, 3]  # the context once, the three together
    widths.clear()
    engine.worker.prefill_chunk = 16
    chunked = await engine.probe(LONG, options, "en")
    assert whole == pytest.approx(expected, abs=1e-3) and len(set(whole)) == 3
    assert chunked == pytest.approx(expected, abs=1e-3)
    assert len(widths) >= 10 and all(rows * columns <= 16 for rows, columns in widths)


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


async def test_rows_of_a_chunked_group_from_a_kept_beginning_compute_what_they_would_alone(
    engine, monkeypatch
):
    worker, tokenizer = engine.worker, engine.tokenizer
    system = tokenizer("You are a helpful bot. " * 6, add_special_tokens=False)["input_ids"]
    bodies = [" hello there", " the cat sat on the mat " * 3, " why"]
    prompts = [system + tokenizer(b, add_special_tokens=False)["input_ids"] for b in bodies]
    logits = first_logits(monkeypatch)

    async def first(which: list[int], chunk: int) -> list[torch.Tensor]:
        worker.prefill_chunk = chunk
        logits.clear()
        requests = [worker.submit(prompts[i], max_new_tokens=1, shared=len(system), chat=str(i))
                    for i in which]
        for request in requests:
            async for _ in request.deltas():
                pass
        return list(torch.cat(logits))

    await first([0], 4096)  # keeps the system prompt's beginning
    alone = [(await first([i], 4096))[0] for i in range(3)]
    hits = worker._prefixes.hits
    together = await first([0, 1, 2], 5)  # three rows, one column each a pass
    assert worker._prefixes.hits == hits + 1
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(alone, together, strict=True))


async def test_a_group_everyone_left_is_not_read_to_its_end(engine):
    worker = engine.worker
    worker.prefill_chunk = 1  # one token a pass: ~130 passes for the whole prompt
    request = worker.submit(engine._encode(LONG), max_new_tokens=4, chat="gone")
    while not worker._filling:
        await asyncio.sleep(0.001)
    request.cancel()
    worker.prefill_chunk = 4096  # "hello" in one pass (the group kept its one token a pass)
    before = worker.passes
    assert await ask(engine, "hello")  # 1 + 40 passes, not after the group's 130
    assert worker.passes - before <= 45 and not worker._filling


async def test_a_probe_its_caller_gave_up_on_is_dropped_unrun(engine):
    worker = engine.worker
    worker.prefill_chunk = 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(engine.probe(LONG, ["mat"], "en"), 0.05)
    for _ in range(200):
        if not worker._calls:
            break
        await asyncio.sleep(0.01)
    assert not worker._calls and worker.passes < len(engine._encode(LONG))


async def test_closing_mid_prefill_and_mid_probe_ends_both_with_an_error(root, tmp_path):
    from engines.transformer.worker import GenerationError

    async with greedy_engine(root, tmp_path, max_new_tokens=5) as engine:
        engine.worker.prefill_chunk = 1
        probe = asyncio.ensure_future(engine.probe(LONG, ["a", "b"], "en"))
        reply = asyncio.ensure_future(ask(engine, LONG))
        while not (engine.worker._filling and engine.worker._calls):
            await asyncio.sleep(0.005)
    for pending in (probe, reply):
        with pytest.raises(GenerationError):
            await asyncio.wait_for(pending, 10)
