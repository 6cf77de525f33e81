"""The transformer engine on the tiny model: streaming, batching, cancellation, crashes, swaps."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from engines.base import Conversation, Turn
from tests.tiny_model import adapter_dir, greedy_engine, tiny_model_dir

PROMPTS = ["hello", "What is ELIZA, and who wrote it?", "AI for everyone is very", "ok so"]



@pytest.fixture
async def engine(root, tmp_path):
    async with greedy_engine(root, tmp_path, max_new_tokens=12) as engine:
        yield engine


async def ask(engine, text: str, adapter: str = "") -> tuple[list[str], dict]:
    conv = Conversation("test:c", text, turns=[Turn("user", "hi"), Turn("bot", "hello")],
                        adapter=adapter)
    async with contextlib.aclosing(engine.reply(conv)) as stream:  # as the router reads it
        deltas = [delta async for delta in stream]
    return deltas, {"version": conv.version} | conv.trace  # the reply's metadata, together


def test_text_deltas_hold_back_half_characters_and_join_to_the_text(root):
    from transformers import AutoTokenizer

    from engines.transformer.detok import TextDeltas

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(root))
    text = "Grüße aus Düsseldorf 🙂 – ok"
    ids = tokenizer(text)["input_ids"]
    assert len(tokenizer.decode(ids[:1])) < len(text)
    deltas = TextDeltas(tokenizer)
    pieces = [deltas.add(token) for token in ids] + [deltas.finish()]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)
    assert sum(1 for p in pieces if p) > 3


async def test_streamed_deltas_join_to_the_decoded_reply(engine):
    ids = engine.tokenizer("Grüße aus Düsseldorf 🙂")["input_ids"]
    request = engine.worker.submit(ids, max_new_tokens=20)
    deltas = [delta async for delta in request.deltas()]
    assert len(request.new_tokens) == 20 and len(deltas) > 1
    assert "".join(deltas) == engine.tokenizer.decode(request.new_tokens, skip_special_tokens=True)
    # random bytes from an untrained model may be invalid UTF-8, but no delta but the last
    # stops in the middle of a character
    assert not any(d.endswith("\ufffd") for d in deltas[:-1])


async def test_concurrent_replies_share_forward_passes_and_match_sequential_ones(engine):
    before = engine.worker.passes
    alone = [await ask(engine, text) for text in PROMPTS]
    sequential = engine.worker.passes - before
    before = engine.worker.passes
    together = await asyncio.gather(*(ask(engine, text) for text in PROMPTS))
    concurrent = engine.worker.passes - before
    assert sequential == len(PROMPTS) * 12  # a prefill and 11 decode steps each
    assert concurrent < sequential / 2
    # left padding and the shared cache change nothing: each reply is what it was alone
    assert ["".join(d) for d, _ in together] == ["".join(d) for d, _ in alone]
    assert all(trace["tokens_out"] == 12 for _, trace in together)


async def test_a_cancelled_reply_leaves_the_batch_and_the_others_finish(engine):
    """A reader that goes away (a timed-out or cancelled reply) takes its row out of the batch.
    It asks for many tokens and leaves after the first piece, so no timing decides the test."""
    long = engine.worker.submit(engine.tokenizer("never mind")["input_ids"], max_new_tokens=200)

    async def cut_short() -> None:
        try:
            async for _ in long.deltas():
                break
        finally:
            long.cancel()  # what engine.reply does when its reader is cut off

    results = await asyncio.gather(cut_short(), *(ask(engine, t) for t in PROMPTS[:3]))
    assert all(trace["tokens_out"] == 12 for _, trace in results[1:])
    async with asyncio.timeout(5):
        while len(engine.worker._batch) or engine.worker._waiting:
            await asyncio.sleep(0.01)
    assert 0 < len(long.new_tokens) < 200


async def test_a_failing_forward_pass_ends_its_replies_with_an_error_and_the_worker_goes_on(
    engine, monkeypatch
):
    from engines.transformer.worker import GenerationError

    real = engine.adapters.forward
    failed = []

    def broken_once(adapters, **inputs):  # the first pass that holds both replies fails
        if len(inputs["input_ids"]) == 2 and not failed:
            failed.append(True)
            raise RuntimeError("out of memory, say")
        return real(adapters, **inputs)

    monkeypatch.setattr(engine.adapters, "forward", broken_once)
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(ask(engine, t) for t in PROMPTS[:2]), return_exceptions=True), 10
    )
    assert all(isinstance(o, GenerationError) and "out of memory" in str(o) for o in outcomes)
    _, trace = await ask(engine, "still there?")
    assert trace["tokens_out"] == 12 and engine.info().ready


async def test_a_swap_during_traffic_delivers_every_reply_and_later_ones_carry_the_new_version(
    engine, root
):
    first = adapter_dir(root, "lora-a", seed=1)
    base_reply = "".join((await ask(engine, PROMPTS[1]))[0])

    async def swap_midway():
        await asyncio.sleep(0)  # let the replies start
        return await engine.use_adapter(str(first))

    *in_flight, version = await asyncio.gather(*(ask(engine, t) for t in PROMPTS), swap_midway())
    assert version == "lora-a" == engine.info().version
    assert [trace["version"] for _, trace in in_flight] == ["base"] * len(PROMPTS)
    assert all(trace["tokens_out"] == 12 for _, trace in in_flight)
    deltas, trace = await ask(engine, PROMPTS[1])
    assert trace["version"] == "lora-a" and "".join(deltas) != base_reply


async def test_adapters_stay_loaded_and_a_pinned_chat_uses_its_own_in_a_mixed_batch(engine, root):
    await engine.use_adapter(str(adapter_dir(root, "lora-a", seed=1)))
    await engine.use_adapter(str(adapter_dir(root, "lora-b", seed=2)))
    alone_a = await ask(engine, PROMPTS[0], adapter="lora-a")
    alone_b = await ask(engine, PROMPTS[0])
    mixed = await asyncio.gather(ask(engine, PROMPTS[0], adapter="lora-a"),
                                 ask(engine, PROMPTS[0]))
    assert engine.loaded_adapters == ["lora-a", "lora-b"]
    assert [t["version"] for _, t in mixed] == ["lora-a", "lora-b"]
    assert ["".join(d) for d, _ in mixed] == ["".join(alone_a[0]), "".join(alone_b[0])]
    assert "".join(alone_a[0]) != "".join(alone_b[0])
    assert await engine.use_adapter("base") == "base"
    assert (await ask(engine, PROMPTS[0]))[1]["version"] == "base"


async def test_a_corrupt_adapter_is_refused_and_the_engine_keeps_serving(engine, tmp_path):
    from engines.transformer.adapters import AdapterError

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (broken / "adapter_model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(AdapterError, match="cannot be loaded"):
        await engine.use_adapter(str(broken))
    (broken / "adapter_config.json").write_text("{truncated")
    with pytest.raises(AdapterError, match=r"adapter_config\.json"):
        await engine.use_adapter(str(broken))
    assert engine.info().version == "base"
    assert (await ask(engine, "hello"))[1]["tokens_out"] == 12


async def test_why_trace_and_next_words(engine):
    _, trace = await ask(engine, "hello")
    assert trace["model"].endswith("tiny") and trace["tokens_in"] > 0
    assert trace["sampling"]["temperature"] == 0.0 and trace["turns_in_prompt"] == 2
    assert trace["seconds"] >= trace["first_token_seconds"] > 0
    assert trace["cut"] == "max_new_tokens"  # 12 tokens, the cap: no end of turn
    words = await engine.next_words("AI for everyone is very", "en", 5)
    probabilities = [p for _, p in words]
    assert len(words) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6 and all(w.strip() == w and w for w, _ in words)


async def test_a_replys_reward_is_what_the_job_scores_under_the_active_reward_model(
        engine, root, tmp_path):
    """/why's reward (the engine) and the gate's (the job) read a reply the same way."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from engines.transformer.reward import FILE, RewardHead
    from finetune.batches import Encoder
    from finetune.reward import features

    assert await engine.reward("hello", "Why do you ask?", "en", False) is None  # no adapter
    folder = tmp_path / "a1"
    shutil.copytree(adapter_dir(root, "lora-a", 1), folder)
    torch.manual_seed(0)
    width = 2 * engine.worker.adapters.model.config.hidden_size
    head = RewardHead(torch.randn(width), 0.3, torch.randn(width), torch.rand(width) + 0.5)
    head.save(folder / FILE)
    await engine.use_adapter(str(folder))

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root)).eval()
    encode = Encoder(engine.tokenizer, engine.system_prompt, 512)
    for cut in (False, True):
        row = encode("hello", "Why do you ask?", "en", cut)
        expected = float(head.score(features(base, [row], engine.tokenizer.pad_token_id, "cpu")))
        value, adapter = await engine.reward("hello", "Why do you ask?", "en", cut)
        assert adapter == "a1" and value == pytest.approx(expected, abs=1e-3)
