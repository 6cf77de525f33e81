"""The transformer and fine-tuning on CUDA, in the dtype the bot would choose there: skipped
unless a GPU is present (bench/gpu_first_run.sh runs these on a GPU machine). bf16 rounds
near-ties differently in batched and solo runs, so logits are compared with a tolerance and
replies by length, never token for token (tests/test_transformer_engine.py does that on the
CPU)."""

from __future__ import annotations

import asyncio
import math

import pytest

from engines.base import Conversation, EngineSetup
from engines.transformer.engine import TransformerEngine, TransformerOptions
from tests.tiny_model import tiny_model_dir

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")

PROMPTS = ["hello", "What is ELIZA, and who wrote it?", "AI for everyone is very", "ok so"]



@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_left_padded_prefill_on_cuda_is_finite_and_close_to_solo(root, dtype):
    from engines.transformer import loading
    from engines.transformer.batch import left_pad, positions, prefill_mask

    model, tokenizer = loading.load(str(tiny_model_dir(root)), "cuda", getattr(torch, dtype))
    prompts = [tokenizer(text)["input_ids"] for text in PROMPTS]
    ids, mask = (t.cuda() for t in left_pad(prompts, tokenizer.pad_token_id))
    attention = prefill_mask(mask, model.config._attn_implementation, model.dtype)
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=attention, position_ids=positions(mask),
                        logits_to_keep=1).logits[:, -1].float()
        alone = torch.cat([model(input_ids=torch.tensor([p], device="cuda")).logits[:, -1]
                           for p in prompts]).float()
    assert torch.isfinite(batched).all()
    tolerance = 5e-2 if dtype == "bfloat16" else 1e-3
    torch.testing.assert_close(batched, alone, atol=tolerance, rtol=tolerance)


async def test_concurrent_replies_on_cuda_finish_with_their_full_length(root, tmp_path):
    options = TransformerOptions(model=str(tiny_model_dir(root)), device="cuda", threads=1,
                                 repetition_penalty=1.3, max_new_tokens=12, seed=1)
    engine = TransformerEngine(options, EngineSetup(tmp_path))
    await engine.start()
    engine.worker.eos_ids = set()
    try:
        async def ask(text):
            conv = Conversation("test:c", text)
            async for _ in engine.reply(conv):
                pass
            return conv.trace

        traces = await asyncio.gather(*(ask(text) for text in PROMPTS))
        assert [t["tokens_out"] for t in traces] == [12] * len(PROMPTS)
        assert all(t["device"] == "cuda" for t in traces)
        assert await engine.next_words("AI for everyone is very", "en")
    finally:
        await engine.close()


def test_a_few_training_steps_on_cuda_stay_finite(root):
    from dataclasses import replace

    from peft import LoraConfig, get_peft_model

    from bot.config import FinetuneOptions
    from engines.transformer import loading
    from finetune import processes
    from finetune.batches import Encoder
    from finetune.model import choose_device
    from finetune.train import Trainer
    from tests.finetune_helpers import dataset

    device, dtype = choose_device("cuda")
    base, tokenizer = loading.load(str(tiny_model_dir(root)), device, dtype)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    opts = replace(FinetuneOptions(), batch_size=4, learning_rate=0.01, sft_steps=3,
                   preference_steps=3)
    accelerator, _, _ = processes.start("cuda")
    try:
        result = Trainer(model, Encoder(tokenizer, lambda lang: "Be brief.", 64), opts,
                         accelerator).run(dataset())
    finally:
        processes.finish(accelerator)
    assert len(result.curve) == 6 and all(math.isfinite(p["loss"]) for p in result.curve)
    assert all(torch.isfinite(p).all() for n, p in model.named_parameters() if "lora_" in n)
