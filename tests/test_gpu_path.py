"""The fixes of the GPU path that the CPU can show: a left-padded prefill where attention gives
NaN for a query with nothing to attend to (as some CUDA kernels do), out-of-memory errors while
the batch's cache grows or shrinks, logits of the last position only, the penalty on the device,
device names and the errors of a torch without CUDA, native bf16, the vocabulary check, and
the output layer in fp32 for fine-tuning. tests/test_cuda.py runs where there is a GPU."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from types import SimpleNamespace

import pytest

from engines.base import Conversation, EngineSetup
from engines.transformer.engine import TransformerEngine, TransformerOptions
from tests.tiny_model import greedy_engine, tiny_model_dir

torch = pytest.importorskip("torch")  # the ml extra

PROMPTS = ["hello", "What is ELIZA, and who wrote it?", "AI for everyone is very", "ok so"]



@pytest.fixture
async def engine(root, tmp_path):
    async with greedy_engine(root, tmp_path, max_new_tokens=8) as engine:
        yield engine


async def ask(engine, text: str) -> list[int]:
    conv = Conversation("test:c", text)
    async with contextlib.aclosing(engine.reply(conv)) as stream:
        async for _ in stream:
            pass
    return conv.trace["tokens_out"]


def nan_where_nothing_is_attended(real):
    """SDPA as some CUDA kernels compute it: NaN for a query whose mask allows no key."""

    def sdpa(query, key, value, attn_mask=None, **kwargs):
        out = real(query, key, value, attn_mask=attn_mask, **kwargs)
        if attn_mask is None:
            return out
        allowed = attn_mask if attn_mask.dtype == torch.bool else (
            attn_mask > torch.finfo(attn_mask.dtype).min)
        return out.masked_fill(~allowed.any(-1, keepdim=True), float("nan"))

    return sdpa


# F3 -------------------------------------------------------------------------------------------

def test_the_prefill_mask_gives_padding_itself_and_real_tokens_what_they_had():
    from engines.transformer.batch import left_pad, prefill_mask

    _, mask = left_pad([[5], [1, 2, 3, 4]], pad_id=0)
    allowed = prefill_mask(mask, "sdpa", torch.float32)[:, 0]
    assert allowed.shape == (2, 4, 4) and bool(allowed.any(-1).all())  # nobody sees nothing
    causal = torch.ones(4, 4, dtype=torch.bool).tril() & mask.bool()[:, None, :]
    real = mask.bool()[:, :, None].expand_as(causal)
    assert torch.equal(allowed[real], causal[real])  # real tokens: causal and real keys
    assert allowed[0, :3].tolist() == torch.eye(4, dtype=torch.bool)[:3].tolist()  # padding
    bias = prefill_mask(mask, "eager", torch.bfloat16)[:, 0]
    assert bias.dtype == torch.bfloat16 and torch.equal(bias == 0, allowed)
    assert prefill_mask(mask, "flash_attention_2", torch.bfloat16) is mask


def test_left_padded_prefill_is_finite_and_equal_to_solo_where_attention_gives_nan(
    root, monkeypatch
):
    from engines.transformer import loading
    from engines.transformer.batch import left_pad, positions, prefill_mask

    model, tokenizer = loading.load(str(tiny_model_dir(root)), "cpu", torch.float32)
    prompts = [tokenizer(text)["input_ids"] for text in PROMPTS]
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([p])).logits[:, -1] for p in prompts])
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        nan_where_nothing_is_attended(torch.nn.functional.
                                                      scaled_dot_product_attention))
    ids, mask = left_pad(prompts, tokenizer.pad_token_id)

    def last_logits(attention):
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=attention, position_ids=positions(mask),
                         logits_to_keep=1).logits[:, -1]

    assert not torch.isfinite(last_logits(mask)).all()  # the bug, as those kernels show it
    batched = last_logits(prefill_mask(mask, model.config._attn_implementation, model.dtype))
    assert torch.isfinite(batched).all()
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)


async def test_replies_batched_under_nan_attention_match_solo_ones(engine, monkeypatch):
    async def tokens(text):
        request = engine.worker.submit(engine.tokenizer(text)["input_ids"], max_new_tokens=8)
        async for _ in request.deltas():
            pass
        return request.new_tokens

    alone = [await tokens(text) for text in PROMPTS]
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        nan_where_nothing_is_attended(torch.nn.functional.
                                                      scaled_dot_product_attention))
    assert await asyncio.gather(*(tokens(text) for text in PROMPTS)) == alone


# F4 -------------------------------------------------------------------------------------------

def out_of_memory_once(real, when=lambda *args: True):
    failed = []

    def maybe_fail(*args, **kwargs):
        if not failed and when(*args):
            failed.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    return maybe_fail


async def test_out_of_memory_while_joining_fails_only_the_new_reply(engine, monkeypatch):
    from engines.transformer.worker import GenerationError

    worker = engine.worker
    running = worker.submit(engine.tokenizer("tell me more")["input_ids"], max_new_tokens=200)
    stream = running.deltas()
    await anext(stream)
    await anext(stream)  # a token of a decode step: it is in the batch now
    monkeypatch.setattr(worker._batch, "join", out_of_memory_once(worker._batch.join))
    with pytest.raises(GenerationError, match=r"^generation failed: out of memory with 2 "):
        await asyncio.wait_for(ask(engine, "hello"), 10)
    async with asyncio.timeout(20):
        async for _ in stream:  # the reply in the batch goes on to its end, without an error
            pass
    assert len(running.new_tokens) == 200 and not worker.dead
    assert await asyncio.wait_for(ask(engine, "still there?"), 10) == 8


async def test_out_of_memory_while_shrinking_fails_the_rest_and_the_worker_serves_on(
    engine, monkeypatch
):
    from engines.transformer.worker import GenerationError

    worker = engine.worker
    monkeypatch.setattr(worker._batch, "keep", out_of_memory_once(
        worker._batch.keep, when=lambda keep: not all(keep)))
    gate = threading.Event()  # holds the worker, so both replies start in one prefill
    held = asyncio.ensure_future(worker.call(gate.wait))
    await asyncio.sleep(0)  # the call is queued: the worker waits in it, or will
    short = worker.submit(engine.tokenizer("hi")["input_ids"], max_new_tokens=2)
    long = worker.submit(engine.tokenizer("hello")["input_ids"], max_new_tokens=50)
    gate.set()
    await held

    async def read(request):
        return [delta async for delta in request.deltas()]

    done = await asyncio.wait_for(asyncio.gather(read(short), read(long),
                                                 return_exceptions=True), 10)
    assert not isinstance(done[0], Exception) and len(short.new_tokens) == 2
    assert isinstance(done[1], GenerationError) and "out of memory" in str(done[1])
    assert await asyncio.wait_for(ask(engine, "still there?"), 10) == 8


# F6, F8 ---------------------------------------------------------------------------------------

async def test_prefill_computes_logits_for_the_last_position_only(engine, monkeypatch):
    real, widths = engine.adapters.forward, []

    def spy(adapters, **inputs):
        out = real(adapters, **inputs)
        widths.append((inputs["input_ids"].shape[1], out.logits.shape[1]))
        return out

    monkeypatch.setattr(engine.adapters, "forward", spy)
    await ask(engine, "What is ELIZA, and who wrote it?")
    assert widths[0][0] > 10 and all(logits == 1 for _, logits in widths)


def test_the_penalty_on_a_seen_mask_equals_it_token_by_token():
    from engines.transformer.sampling import penalise, seen_mask

    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    seen = [[1, 2, 2, 49], [], [0, 7]]
    expected = logits.clone()
    for row, tokens in enumerate(seen):
        for token in set(tokens):
            value = expected[row, token]
            expected[row, token] = value / 1.5 if value > 0 else value * 1.5
    mask = seen_mask(seen, 50, "cpu")
    assert mask.sum().item() == 5
    assert torch.equal(penalise(logits, mask, 1.5), expected)


# F11, F12, F14, F16 ---------------------------------------------------------------------------

@pytest.fixture
def two_gpus(monkeypatch):
    """A torch that says it was built for CUDA 12.8 and sees two GPUs of compute capability
    `gpus.major` (no GPU is touched: only what the device choice asks)."""
    gpus = SimpleNamespace(major=9)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(major=gpus.major))
    return gpus


def test_devices_are_cpu_mps_cuda_or_cuda_n_and_a_bad_one_is_one_line(two_gpus):
    from engines.transformer.loading import ModelUnavailable, choose_device

    assert [choose_device(d) for d in ("cpu", "cuda", "cuda:0", "cuda:1")] == [
        "cpu", "cuda", "cuda:0", "cuda:1"]
    assert choose_device("auto") == "cuda"
    for bad, why in [("gpu", "expected"), ("cuda:", "expected"), ("cuda:x", "expected"),
                     ("cuda:2", "sees 2 GPU")]:
        with pytest.raises(ModelUnavailable, match=why) as caught:
            choose_device(bad)
        assert "\n" not in str(caught.value)


def test_native_bf16_only_else_fp16_serving_and_fp32_training(two_gpus):
    from engines.transformer.loading import choose_dtype
    from finetune.model import choose_device

    assert choose_dtype("auto", "cuda:1") == torch.bfloat16
    assert choose_device("cuda:1") == ("cuda:1", torch.bfloat16)
    two_gpus.major = 7  # a V100 or T4: bf16 only emulated
    assert choose_dtype("auto", "cuda") == torch.float16
    assert choose_device("auto") == ("cuda", torch.float32)
    assert choose_dtype("float32", "cuda") == torch.float32


async def test_cuda_with_a_torch_without_cuda_makes_the_engine_say_what_to_install(
    tmp_path, root, monkeypatch
):
    from engines.transformer.loading import ModelUnavailable

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    options = TransformerOptions(model=str(tiny_model_dir(root)), device="cuda:1", threads=1)
    engine = TransformerEngine(options, EngineSetup(tmp_path))
    with pytest.raises(ModelUnavailable, match=r"build without CUDA.*nvidia-smi") as caught:
        await engine.start()
    assert "\n" not in str(caught.value)


def test_the_config_takes_cuda_n_for_serving_and_training(tmp_path):
    from bot.config import load_config

    path = tmp_path / "config.toml"
    path.write_text('[finetune]\ndevice = "cuda:1"\n[engines.transformer]\ndevice = "cuda:0"\n')
    config = load_config(path, data_dir=str(tmp_path))
    assert config.finetune.device == "cuda:1"
    assert config.options("engines.transformer", TransformerOptions).device == "cuda:0"


def test_a_tokenizer_with_more_tokens_than_the_embedding_is_refused(root, tmp_path):
    from transformers import AutoTokenizer

    from engines.transformer import loading

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir(root), folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model, _ = loading.load(str(folder), "cpu", torch.float32)
    rows = model.get_input_embeddings().num_embeddings
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(rows - len(tokenizer) + 1)])
    tokenizer.save_pretrained(folder)
    with pytest.raises(loading.ModelUnavailable, match=r"tokens but its embedding only") as caught:
        loading.load(str(folder), "cpu", torch.float32)
    assert "\n" not in str(caught.value)


# F9, F13 --------------------------------------------------------------------------------------

def test_fine_tuning_log_probs_of_a_bf16_model_come_from_an_fp32_output_layer(root):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from finetune.batches import fp32_logits

    torch.manual_seed(0)
    ids = torch.randint(0, 300, (2, 12))
    attention = torch.ones_like(ids)
    full = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root))
    with torch.no_grad():
        assert torch.equal(fp32_logits(full, ids, attention),
                           full(input_ids=ids, attention_mask=attention).logits)  # fp32 as is
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root), dtype=torch.bfloat16)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, lora)
    with torch.no_grad():
        logits = fp32_logits(model, ids, attention)
        plain = model(input_ids=ids, attention_mask=attention).logits.float()
        with model.disable_adapter():
            without = fp32_logits(model, ids, attention)
    assert logits.dtype == torch.float32 and (logits.bfloat16().float() != logits).any()
    torch.testing.assert_close(logits, plain, atol=2e-2, rtol=2e-2)  # the same model
    assert (logits - without).abs().max() > 1e-3  # the adapter takes part


def test_adapters_for_training_and_judging_load_on_the_model_device_not_the_gpu(
    root, tmp_path, monkeypatch
):
    import peft.peft_model
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from finetune.evaluate import load_for_eval
    from finetune.model import with_lora

    folder = tmp_path / "adapter"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root))
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(folder)

    def guess():  # PEFT's guess when no torch_device is given: "cuda" whenever there is one
        raise AssertionError("the adapter's device was guessed")

    monkeypatch.setattr(peft.peft_model, "infer_device", guess)
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root))
    assert with_lora(fresh, None, folder).device.type == "cpu"
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root))
    judged = load_for_eval(fresh, folder, folder)
    assert set(judged.peft_config) == {"candidate", "active"}


async def test_the_engine_loads_adapters_on_its_device_not_the_gpu(engine, root, monkeypatch):
    import peft.peft_model

    from tests.tiny_model import adapter_dir

    def guess():
        raise AssertionError("the adapter's device was guessed")

    monkeypatch.setattr(peft.peft_model, "infer_device", guess)
    for name, seed in [("lora-a", 1), ("lora-b", 2)]:  # the first wraps the model, then beside
        await engine.use_adapter(str(adapter_dir(root, name, seed)))
    assert engine.loaded_adapters == ["lora-a", "lora-b"] and engine.version == "lora-b"


def test_more_training_processes_than_gpus_or_one_named_gpu_under_a_launcher_is_one_line(
    two_gpus, monkeypatch
):
    from engines.transformer.loading import ModelUnavailable
    from finetune.processes import device_for

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device_for("cuda")[0] == "cuda:1"
    monkeypatch.setenv("LOCAL_RANK", "2")
    for wanted, why in [("cuda", "3 training processes on this machine but 2 visible GPUs"),
                        ("cuda:0", 'device = "cuda:0" names one GPU')]:
        with pytest.raises(ModelUnavailable, match=why) as caught:
            device_for(wanted)
        assert "\n" not in str(caught.value)
