"""The real-model tier: what only a real model shows, on SmolLM2-135M-Instruct (smol_model.py).

The tiny model's tests show that batching, streaming and swaps work; these show that they give
a real model's answers: batched greedy replies equal `generate()`'s, the model knows Paris, a
reply cut by its token cap reads as finished text, and a fine-tuning job's adapter changes what
the model says. The model is loaded once for the module (~3 s)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import sqlite3
import subprocess
import sys

import pytest

from engines.base import Conversation, EngineSetup
from tests.finetune_helpers import DB, finetune_toml, seed, taste_rows
from tests.harness import ROOT
from tests.smol_model import smol_dir

pytest.importorskip("torch", reason="the real model needs the ml extra")
pytestmark = pytest.mark.smol

MAX_NEW_TOKENS = 16
QUESTIONS = ["Men are all alike.", "What is the capital of France?", "Tell me about cats.",
             "Why is the sky blue?"]


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    """The transformer engine on the real model, greedy, float32 on the CPU, with the bot's
    default repetition penalty and system prompt; started once for the module."""
    from engines.transformer.engine import TransformerEngine, TransformerOptions

    options = TransformerOptions(model=str(smol_dir()), device="cpu", dtype="float32",
                                 threads=1, temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    data = tmp_path_factory.mktemp("smol")
    engine = TransformerEngine(options, EngineSetup(data / "engine", adapters_dir=data))
    asyncio.run(engine.start())
    yield engine
    asyncio.run(engine.close())


async def reply(engine, text: str, adapter: str = "") -> tuple[str, dict]:
    conv = Conversation("test:c", text, adapter=adapter)
    async with contextlib.aclosing(engine.reply(conv)) as stream:  # as the router reads it
        shown = "".join([delta async for delta in stream])
    return shown, conv.trace


def generate(engine, ids: list[int]) -> list[int]:
    """`model.generate()`'s greedy tokens after `ids`, stopping where the worker stops."""
    import torch

    inputs = torch.tensor([ids])
    out = engine.adapters.model.generate(
        inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
        repetition_penalty=engine.options.repetition_penalty, max_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=sorted(engine.worker.eos_ids), pad_token_id=engine.tokenizer.pad_token_id)
    tokens = out[0, len(ids):].tolist()
    while tokens and tokens[-1] in engine.worker.eos_ids | {engine.tokenizer.pad_token_id}:
        tokens.pop()
    return tokens


async def test_batched_greedy_replies_equal_generate_token_for_token(smol):
    from engines.transformer import prompt

    system = smol.system_prompt("en")
    prompts = [prompt.build(smol.tokenizer, system, [], q, 10**6)[0] for q in QUESTIONS]
    shared = prompt.shared_length(prompts[0], smol._system_start(system))
    first = smol.worker.submit(prompts[0], max_new_tokens=MAX_NEW_TOKENS, shared=shared)
    await _drain(first)  # keeps the system prompt's cache for the others
    hits = smol.worker._prefixes.hits
    requests = [smol.worker.submit(ids, max_new_tokens=MAX_NEW_TOKENS, shared=shared)
                for ids in prompts]
    await asyncio.gather(*(_drain(r) for r in requests))
    expected = [await smol.worker.call(lambda ids=ids: generate(smol, ids)) for ids in prompts]
    assert smol.worker._prefixes.hits > hits  # the batch started from the kept system prompt
    assert [r.new_tokens for r in requests] == expected
    assert requests[0].new_tokens == first.new_tokens
    assert len({len(r.new_tokens) for r in requests}) > 1 or all(r.cut for r in requests)


async def test_next_words_know_paris_and_probe_orders_continuations(smol):
    words = await smol.next_words("The capital of France is", "en", 5)
    assert words[0][0] == "Paris" and words[0][1] > 0.5
    logprobs = await smol.probe("The capital of France is", ["Paris", "Berlin", "a banana"], "en")
    assert all(math.isfinite(value) and value < 0 for value in logprobs)
    assert logprobs == sorted(logprobs, reverse=True)


ROLE_OR_TEMPLATE = re.compile(r"<\||\|>|^(user|assistant|system)\b", re.MULTILINE)


async def test_a_reply_cut_by_its_token_cap_ends_at_a_sentence_never_mid_word(smol):
    """Streamed as the router reads it: what was sent is all the chat ever shows."""
    replies = await asyncio.gather(*(reply(smol, q) for q in QUESTIONS))
    cut = [(text, trace) for text, trace in replies if trace["tokens_out"] == MAX_NEW_TOKENS]
    assert len(cut) >= 3  # 16 tokens: most of SmolLM2's answers go on longer
    for text, _ in cut:
        assert text and text[-1] in ".!?…\"”')", text
        assert not ROLE_OR_TEMPLATE.search(text), text
    untrimmed = await asyncio.gather(*(_tokens(smol, q) for q in QUESTIONS))  # the same, whole
    for (text, _), tokens in zip(replies, untrimmed, strict=True):
        whole = smol.tokenizer.decode(tokens, skip_special_tokens=True,
                                      clean_up_tokenization_spaces=False)
        assert whole.startswith(text.removesuffix("…")), (text, whole)


async def _tokens(engine, question: str) -> list[int]:
    from engines.transformer import prompt

    ids, _ = prompt.build(engine.tokenizer, engine.system_prompt("en"), [], question, 10**6)
    return await _drain(engine.worker.submit(ids, max_new_tokens=MAX_NEW_TOKENS))


async def _drain(request) -> list[int]:
    _ = [delta async for delta in request.deltas()]
    return request.new_tokens


@pytest.mark.timeout(600)  # a job process: loading, 2 KTO steps (~1 min on 2 busy cores)
def test_a_few_lora_steps_on_votes_make_an_adapter_that_changes_replies_and_swaps(
        smol, tmp_path):
    """A fine-tuning job (its own process, as /retrain starts it) on a handful of votes; the
    running engine loads its adapter beside the base model, answers differently with it, and
    back on the base answers as before: one base model in memory throughout."""
    data, config = tmp_path / "data", tmp_path / "config.toml"
    data.mkdir()
    asyncio.run(seed(data / DB, taste_rows(8)))
    config.write_text(finetune_toml(smol_dir(), preference_steps=2,
                                    learning_rate=0.002, max_tokens=48, threads=1))
    done = subprocess.run([sys.executable, "-m", "finetune", "run", "--data-dir", str(data),
                           "--config", str(config)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-1000:] + done.stderr[-2000:]
    with sqlite3.connect(data / DB) as db:
        [(adapter,)] = db.execute("SELECT id FROM adapters").fetchall()  # promoted or not
    base_model = smol.adapters.model.get_base_model() if smol.adapters.folders else \
        smol.adapters.model
    asyncio.run(_swap_and_compare(smol, data / "adapters" / adapter, base_model))


async def _swap_and_compare(engine, folder, base_model) -> None:
    async def replies() -> list[str]:
        return [text for text, _ in await asyncio.gather(*(reply(engine, q) for q in QUESTIONS))]

    before = await replies()
    assert await engine.use_adapter(str(folder)) == folder.name
    tuned = await replies()
    assert await engine.use_adapter("base") == "base"
    after = await replies()
    assert tuned != before and after == before
    assert engine.adapters.model.get_base_model() is base_model  # never loaded again
