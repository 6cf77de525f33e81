"""Generation stops where the chat template ends a turn or starts the next one: a reply never
carries the next turn's role ("user", "assistant") as text.

An untrained tiny model rarely opens a new turn and a pre-trained one takes minutes to build, so
the tiny model is wired by hand into one that surely does: every layer's output projections
are zeroed (the last hidden state is then the current token's embedding) and the untied output
layer maps each token to the next one of a loop: "Hello there." <|im_start|> "user" "\\n" ...
"""

from __future__ import annotations

import contextlib

import pytest

from engines.base import Conversation, EngineSetup
from engines.transformer.engine import TransformerEngine, TransformerOptions
from engines.transformer.loading import eos_ids
from tests.tiny_model import tiny_model_dir

SAYS = "Hello there."



@pytest.fixture(scope="module")
def wired(root):
    """The tiny model, wired to say SAYS and then open a user turn, forever."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(root))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root))
    newline = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}],
                                            add_generation_prompt=True, return_dict=False)[-1]
    loop = [newline, *tokenizer.encode(SAYS), tokenizer.convert_tokens_to_ids("<|im_start|>"),
            *tokenizer.encode("user")]
    assert len(set(loop)) == len(loop)  # each token has one successor
    embeddings = model.get_input_embeddings().weight.detach()
    head = torch.zeros_like(embeddings)
    for token, successor in zip(loop, loop[1:] + loop[:1], strict=True):
        head[successor] = 20 * embeddings[token] / embeddings[token].norm()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(head)
    folder = root / "wired"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
async def engine(wired, tmp_path):
    options = TransformerOptions(model=str(wired), device="cpu", threads=1, temperature=0.0,
                                 repetition_penalty=1.0, max_new_tokens=24)
    engine = TransformerEngine(options, EngineSetup(tmp_path / "engines" / "transformer"))
    await engine.start()
    yield engine
    await engine.close()


async def reply(engine, text: str) -> str:
    conv = Conversation("test:c", text)
    async with contextlib.aclosing(engine.reply(conv)) as stream:
        return "".join([delta async for delta in stream])


def test_the_stop_tokens_are_the_templates_turn_markers(root):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(root))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root))
    stops = eos_ids(model, tokenizer)
    assert sorted(tokenizer.convert_ids_to_tokens(sorted(stops))) == ["<|im_end|>",
                                                                      "<|im_start|>"]
    assert tokenizer.pad_token_id not in stops


async def test_a_reply_never_contains_a_role_marker(engine):
    for text in ("hello", "how are you", "Tell me more about yourself."):
        assert await reply(engine, text) == SAYS


async def test_stopping_only_at_the_end_token_would_let_the_role_through(engine):
    """The wiring holds: with the end-of-sequence token alone, the next turn's role shows."""
    engine.worker.eos_ids = {engine.tokenizer.eos_token_id}
    text = await reply(engine, "hello")
    assert text.startswith(SAYS + "user\n" + SAYS)
