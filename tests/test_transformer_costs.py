"""What a GPU would pay for and the CPU shows: one adapter per batch set instead of PEFT's
mixed path, adapters read off the worker's thread and evicted beyond a count, /probe scored as
fine-tuning's evaluation scores, and a fatal device error that stops the worker once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import pytest
import torch

from engines.base import Conversation
from tests.tiny_model import adapter_dir, greedy_engine

PROMPTS = ["hello", "What is ELIZA, and who wrote it?", "AI for everyone is very"]


@pytest.fixture
async def engine(root, tmp_path):
    async with greedy_engine(root, tmp_path, max_new_tokens=12) as engine:
        yield engine


async def ask(engine, text: str, adapter: str = "") -> str:
    conv = Conversation("test:c", text, adapter=adapter)
    async with contextlib.aclosing(engine.reply(conv)) as stream:
        return "".join([delta async for delta in stream])


async def test_a_batch_on_one_adapter_sets_it_and_gives_the_mixed_paths_tokens(engine, root):
    await engine.use_adapter(str(adapter_dir(root, "lora-a", seed=1)))
    adapters = engine.adapters
    with_base = await asyncio.gather(*(ask(engine, t) for t in PROMPTS),
                                     ask(engine, PROMPTS[0], adapter="base"))
    mixed = adapters.mixed_passes
    assert mixed > 0  # the base row made those passes mixed
    alone = await asyncio.gather(*(ask(engine, t) for t in PROMPTS))
    assert adapters.mixed_passes == mixed  # one adapter: set, no adapter_names
    assert alone == with_base[:3]
    base = await asyncio.gather(*(ask(engine, t, adapter="base") for t in PROMPTS))
    assert adapters.mixed_passes == mixed and base != alone and base[0] == with_base[3]


async def test_a_slow_adapter_read_does_not_hold_up_the_replies_being_generated(
    engine, root, monkeypatch
):
    folder = adapter_dir(root, "lora-a", seed=1)
    reading, release = threading.Event(), threading.Event()
    real = engine.adapters.prepare

    def slow_prepare(*args):  # the disk (or a network share) takes its time
        reading.set()
        release.wait(30)
        return real(*args)

    monkeypatch.setattr(engine.adapters, "prepare", slow_prepare)
    swap = asyncio.create_task(engine.use_adapter(str(folder)))
    await asyncio.to_thread(reading.wait, 10)
    before = engine.worker.passes
    replies = await asyncio.wait_for(asyncio.gather(*(ask(engine, t) for t in PROMPTS)), 20)
    assert all(replies) and engine.worker.passes > before + 10 and not swap.done()
    release.set()
    assert await swap == "lora-a" and await ask(engine, PROMPTS[0]) != replies[0]


async def test_beyond_max_adapters_the_least_recently_used_idle_one_is_unloaded(engine, root):
    engine.adapters.limit = 2
    folders = [adapter_dir(root, name, seed) for name, seed in
               [("lora-a", 1), ("lora-b", 2), ("lora-c", 3)]]
    await engine.use_adapter(str(folders[0]))
    first_a = await ask(engine, PROMPTS[0])
    await engine.use_adapter(str(folders[1]))
    await ask(engine, PROMPTS[0])
    await engine.use_adapter(str(folders[2]))  # a: neither active nor used since b was
    assert engine.loaded_adapters == ["lora-b", "lora-c"]
    assert all(key[0] != "lora-a" for key in engine.worker._prefixes._kv)
    assert await ask(engine, PROMPTS[0], adapter="lora-a") == first_a  # loaded again
    assert sorted(engine.loaded_adapters) == ["lora-a", "lora-c"]  # never the active one


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
async def test_probe_scores_as_fine_tunings_evaluation_does(engine, root, dtype):
    from finetune.batches import Encoded, collate, completion_logps

    await engine.use_adapter(str(adapter_dir(root, "lora-a", seed=1)))
    engine.adapters.model.to(dtype)
    context, continuation = "The nurse said that", "she would come back"
    [probed] = await engine.probe(context, [continuation], "en")
    row = Encoded(engine._encode(context), engine._encode(" " + continuation))
    batch = collate([row], engine.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        engine.adapters.select("lora-a")
        evaluated = float(completion_logps(engine.adapters.model, batch)[0])
    assert probed == pytest.approx(evaluated, abs=1e-4)
    words = await engine.next_words(context, "en", k=3)
    assert len(words) == 3 and all(0 < p <= 1 for _, p in words)


async def test_a_fatal_device_error_stops_the_worker_with_one_line(engine, monkeypatch, caplog):
    from engines.transformer.worker import GenerationError

    def lost(adapters, **inputs):
        raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered\n"
                                     "CUDA kernel errors might be asynchronously reported")

    monkeypatch.setattr(engine.adapters, "forward", lost)
    with caplog.at_level(logging.ERROR), pytest.raises(GenerationError, match="restart"):
        await asyncio.wait_for(ask(engine, PROMPTS[0]), 10)
    async with asyncio.timeout(5):
        while engine.worker._thread.is_alive():
            await asyncio.sleep(0.01)
    lines = [r for r in caplog.records if r.name.startswith("engines.transformer")]
    assert len(lines) == 1 and lines[0].exc_info is None and "illegal memory" in lines[0].message
    assert not engine.info().ready and "restart" in engine.info().detail
    with pytest.raises(GenerationError):
        await ask(engine, PROMPTS[1])


async def test_the_gpu_cache_goes_back_after_an_oom_or_when_the_device_is_nearly_full(
    engine, monkeypatch
):
    """Not at every idle moment: emptying the cache synchronises the device."""
    emptied, free = [], [0.5]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free[0] * 80e9, 80e9))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    worker = engine.worker
    monkeypatch.setattr(worker, "device", "cuda:0")  # only the release reads it here
    worker._release_memory(oom=False)
    assert emptied == []
    worker._release_memory(oom=True)
    free[0] = 0.05
    worker._release_memory(oom=False)
    assert len(emptied) == 2
