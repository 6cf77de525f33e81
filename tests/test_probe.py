"""/probe: the probability of whole continuations after a context, on the n-gram model (checked
against its word-by-word distributions) and the tiny transformer (against a direct forward
pass), and the command's answers."""

from __future__ import annotations

import math

import pytest

from bot.commands.lesson import probe_lines
from engines.base import EngineSetup
from engines.ngram.tokens import tokenize
from engines.ngram.vocab import BOS
from engines.transformer.engine import TransformerEngine, TransformerOptions
from tests.harness import say
from tests.ngram_helpers import TWENTY_WORDS, said, started
from tests.tiny_model import tiny_model_dir


def chained(language, context: str, continuation: str) -> float:
    """ln p of the continuation, multiplied out from the model's full next-word distributions
    (another path through the model than the engine's one lookup per word)."""
    vocab, model = language.corpus.vocab, language.models.forward
    history = [BOS, *vocab.encode(tokenize(context))]
    total = 0.0
    for word in vocab.encode(tokenize(continuation)):
        total += math.log(model.distribution(history)[word])
        history.append(word)
    return total


@pytest.mark.parametrize("order", [1, 2, 3])
async def test_ngram_probe_is_the_product_over_the_words(tmp_path, order):
    engine = await started(tmp_path, TWENTY_WORDS, order=order)
    language = engine.languages["en"]
    continuations = ["sat on the mat", "ran to the cat", "likes zebras"]  # "zebras": unknown
    got = await engine.probe("the cat", continuations, "en")
    expected = [chained(language, "the cat", c) for c in continuations]
    assert got == pytest.approx(expected, rel=1e-9)
    assert all(-math.inf < value < 0 for value in got)


async def test_ngram_probe_prefers_what_the_corpus_says(tmp_path):
    engine = await started(tmp_path, [said("the doctor said that he was late", person=p)
                                      for p in ("a", "b", "c")]
                           + ["the nurse said that she was late"])
    he, she = await engine.probe("the doctor said that", ["he", "she"], "en")
    # order 3: "said that" was followed by "he" by 3 people, by "she" by one
    assert he > she
    assert math.exp(he) + math.exp(she) <= 1 + 1e-9



async def test_transformer_probe_matches_a_direct_forward_pass(root, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_model_dir(root)
    engine = TransformerEngine(TransformerOptions(model=str(folder), device="cpu", threads=1),
                               EngineSetup(tmp_path / "t"))
    await engine.start()
    try:
        got = await engine.probe("AI for everyone is", ["very good", "bad"], "en")
    finally:
        await engine.close()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    context = tokenizer("AI for everyone is", add_special_tokens=False)["input_ids"]
    expected = []
    for text in ["very good", "bad"]:
        tokens = tokenizer(" " + text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([context + tokens])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        expected.append(sum(float(logp[len(context) + i - 1, token])
                            for i, token in enumerate(tokens)))
    assert got == pytest.approx(expected, abs=1e-4)
    assert len(tokenizer(" very good", add_special_tokens=False)["input_ids"]) > 1


def test_probe_lines_show_probability_and_ratio_to_the_first():
    lines = probe_lines(["he", "she"], [math.log(3.1e-3), math.log(1.2e-3)])
    assert lines == ["he  3.1e-03  1.00x", "she  1.2e-03  0.39x"]
    assert probe_lines(["a", "b"], [-math.inf, -1.0])[1].endswith("—")


async def test_probe_command_answers_usage_and_engines_without_probabilities(serve):
    async with serve() as router:
        for bad in ["/probe", "/probe no bar", "/probe context | only one", "/probe a | | "]:
            assert (await say(router, bad)).final.startswith("Usage: /probe CONTEXT | A | B")
        await say(router, "/engine eliza")
        assert (await say(router, "/probe a | b | c")).final == (
            "The eliza engine has no probabilities; try /engine ngram.")
