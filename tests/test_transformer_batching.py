"""What makes batched generation cheap: kept prompt beginnings, one wake-up of the event loop
per step, and sampling over the top-k candidates only. Each must leave the replies as they were."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
import torch

from engines.base import Conversation
from tests.tiny_model import adapter_dir, greedy_engine

PROMPTS = ["hello", "What is ELIZA, and who wrote it?", "AI for everyone is very", "ok so"]


@pytest.fixture
async def engine(root, tmp_path):
    async with greedy_engine(root, tmp_path, max_new_tokens=12) as engine:
        yield engine


async def ask(engine, text: str, lang: str = "en", adapter: str = "") -> str:
    conv = Conversation("test:c", text, lang=lang, adapter=adapter)
    async with contextlib.aclosing(engine.reply(conv)) as stream:
        return "".join([delta async for delta in stream])


def prefill_widths(engine, monkeypatch) -> list[int]:
    """The input width of every prefill pass from now on (decode passes are 1 wide)."""
    real, widths = engine.adapters.forward, []

    def spy(adapters, **inputs):
        if inputs["input_ids"].shape[1] > 1:
            widths.append(inputs["input_ids"].shape[1])
        return real(adapters, **inputs)

    monkeypatch.setattr(engine.adapters, "forward", spy)
    return widths


async def test_the_system_prompt_is_prefilled_once_per_language_and_adapter(
    engine, root, monkeypatch
):
    widths = prefill_widths(engine, monkeypatch)
    first = await ask(engine, PROMPTS[1])
    again = await ask(engine, PROMPTS[1])
    other = await ask(engine, PROMPTS[2])
    german = [await ask(engine, PROMPTS[1], "de") for _ in range(2)]
    system = engine._system_start(engine.system_prompt("en"))
    assert len(system) > 20
    whole = widths[0]
    # the whole prompt once; then only what follows the system prompt; German has its own
    assert widths[1] < whole - 20 and widths[2] < whole - 20 and widths[3] > widths[4]
    assert again == first and german[0] == german[1]
    assert engine.worker._prefixes.hits == 3 and other
    await engine.use_adapter(str(adapter_dir(root, "lora-a", seed=1)))
    await ask(engine, PROMPTS[1])  # the adapter changes keys and values: its own beginning
    assert widths[5] == whole and engine.worker._prefixes.hits == 3


async def test_replies_from_a_kept_beginning_equal_replies_prefilled_whole(engine):
    whole = [await ask(engine, text) for text in PROMPTS]  # the first one keeps the beginning
    engine.worker._prefixes.clear()
    alone_whole = await ask(engine, PROMPTS[0])
    together = await asyncio.gather(*(ask(engine, text) for text in PROMPTS))
    assert alone_whole == whole[0] and together == whole
    assert engine.worker._prefixes.hits >= len(PROMPTS)


async def test_the_first_tokens_logits_from_a_kept_beginning_are_those_of_a_whole_prefill(
    engine, monkeypatch
):
    """Equal text could hide a small error (an untrained model's greedy choice is robust); the
    logits of the first token cannot."""
    from engines.transformer import worker as worker_module

    real, first = worker_module.next_tokens, []

    def spy(logits, seen, sampling, generator=None):
        first.append(logits.clone())
        return real(logits, seen, sampling, generator)

    monkeypatch.setattr(worker_module, "next_tokens", spy)
    await ask(engine, PROMPTS[1])
    whole = first[0]
    first.clear()
    await ask(engine, PROMPTS[1])
    assert engine.worker._prefixes.hits == 1
    assert torch.allclose(first[0], whole, atol=1e-4)


async def test_a_mixed_burst_is_prefilled_group_by_group_and_every_reply_is_as_alone(engine):
    alone = [await ask(engine, text, lang) for lang in ("en", "de") for text in PROMPTS[:2]]
    burst = await asyncio.gather(*(ask(engine, text, lang)
                                   for lang in ("en", "de") for text in PROMPTS[:2]))
    assert burst == alone


async def burst(engine, texts: list[str]) -> list[str]:
    """All of `texts` queued while the worker is held, so it finds them waiting together."""
    gate = threading.Event()
    held = asyncio.ensure_future(engine.worker.call(gate.wait))
    replies = [asyncio.ensure_future(ask(engine, text)) for text in texts]
    while len(engine.worker._waiting) + engine.worker._inbox.qsize() < len(texts):
        await asyncio.sleep(0.01)
    gate.set()
    await held
    return list(await asyncio.gather(*replies))


async def test_a_burst_wider_than_the_prefill_budget_is_prefilled_in_parts(engine, monkeypatch):
    alone = [await ask(engine, text) for text in PROMPTS]  # the beginning is kept from here on
    widths = prefill_widths(engine, monkeypatch)
    assert await burst(engine, PROMPTS) == alone and len(widths) == 1  # one pass: all fit
    engine.worker.prefill_tokens = 40  # about two of them, after the system prompt
    assert await burst(engine, PROMPTS) == alone
    assert 3 <= len(widths) <= len(PROMPTS) + 1  # in parts: never all at once


async def test_the_text_of_one_step_reaches_the_event_loop_in_one_wake_up(engine, monkeypatch):
    from engines.transformer import request as request_module

    real, deliveries = request_module._deliver, []

    def spy(events):
        deliveries.append(len(events))
        real(events)

    monkeypatch.setattr(request_module, "_deliver", spy)
    await ask(engine, "warm")  # the beginning is kept: the burst below is one prefill
    deliveries.clear()
    before = engine.worker.passes
    await asyncio.gather(*(ask(engine, text) for text in PROMPTS))
    passes = engine.worker.passes - before
    assert len(deliveries) <= passes and max(deliveries) >= len(PROMPTS)
    assert sum(deliveries) >= len(PROMPTS) * 2  # every row's text and its end arrived


def dense(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then top-p over the whole vocabulary, as the worker sampled before: the reference."""
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(ordered, dim=-1)
        ordered = ordered.masked_fill(probs.cumsum(-1) - probs > top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
    return torch.softmax(logits, dim=-1)


@pytest.mark.parametrize(("top_k", "top_p"), [(50, 0.9), (5, 1.0), (0, 0.8), (0, 1.0), (1, 0.5)])
def test_sampling_over_the_candidates_gives_the_whole_vocabularys_distribution(top_k, top_p):
    from engines.transformer.sampling import candidates

    logits = torch.randn(4, 300, generator=torch.Generator().manual_seed(top_k)) * 3
    probs, ids = candidates(logits, top_k, top_p)
    spread = torch.zeros_like(logits).scatter_add(-1, ids, probs)
    assert torch.allclose(spread, dense(logits, top_k, top_p), atol=1e-6)
    assert probs.shape[-1] == (top_k or 300)


def test_sampled_tokens_come_from_the_candidates_and_follow_the_seed():
    from engines.transformer.sampling import Sampling, next_tokens

    logits = torch.randn(3, 200, generator=torch.Generator().manual_seed(1))
    seen = torch.zeros(3, 200, dtype=torch.bool)
    sampling = Sampling(temperature=0.7, top_k=3, top_p=1.0, repetition_penalty=1.0)
    draws = [next_tokens(logits, seen, sampling, torch.Generator().manual_seed(7))
             for _ in range(2)]
    top3 = torch.topk(logits, 3, dim=-1).indices
    assert torch.equal(draws[0], draws[1])
    assert all(int(token) in top3[row].tolist() for row, token in enumerate(draws[0]))
