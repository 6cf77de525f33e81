"""The transformer engine's setup: config, cheap imports, clear errors, prompts, the tiny model,
and one reply through the real router and store."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.events import Incoming
from engines.base import EngineSetup, Turn
from engines.registry import Engines
from engines.transformer.engine import TransformerEngine, TransformerOptions
from tests.harness import ROOT, RecordingSink
from tests.tiny_model import adapter_dir, tiny_model_dir


def test_importing_the_engine_and_the_bot_does_not_import_torch():
    code = ("import sys, bot.app, engines.transformer.engine; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


async def start(tmp_path, **options) -> TransformerEngine:
    options.setdefault("device", "cpu")  # the same on a GPU machine (tests/test_cuda.py: CUDA)
    engine = TransformerEngine(TransformerOptions(threads=1, **options),
                               EngineSetup(tmp_path / "engines" / "transformer"))
    await engine.start()
    return engine


async def test_a_missing_model_folder_says_what_to_do(tmp_path):
    from engines.transformer.loading import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="make-tiny") as caught:
        await start(tmp_path, model=str(tmp_path / "no-such-model"))
    assert "\n" not in str(caught.value)


async def test_a_hub_model_that_cannot_be_downloaded_says_what_to_download(tmp_path):
    from engines.transformer.loading import ModelUnavailable

    with pytest.raises(ModelUnavailable, match=r"hf download nobody/no-such-model") as caught:
        await start(tmp_path, model="nobody/no-such-model")  # offline in tests: never fetched
    assert "\n" not in str(caught.value)


async def test_without_the_ml_extra_the_engine_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a `make run` install
    with pytest.raises(ModuleNotFoundError, match=r"torch is not installed.*\[ml\]"):
        await start(tmp_path)


async def test_a_corrupt_start_adapter_leaves_the_base_model_serving(tmp_path, root):
    broken = tmp_path / "adapters" / "broken"
    broken.mkdir(parents=True)
    (broken / "adapter_config.json").write_text("{")
    heard: list[tuple[str, str]] = []

    async def adapter_broken(adapter_id: str, why: str) -> None:
        heard.append((adapter_id, why))

    setup = EngineSetup(tmp_path, adapter_broken=adapter_broken)
    options = {"transformer": TransformerOptions(model=str(tiny_model_dir(root)),
                                                 adapter=str(broken), threads=1)}
    engines = Engines.from_specs({"transformer": "engines.transformer.engine:TransformerEngine"},
                                 setup, lambda name, cls: options[name])
    engine = await engines.get("transformer")
    state, version, detail = engines.status("transformer")
    assert state == "ready" and version == "base" and "cannot be loaded" in detail
    [(adapter, why)] = heard
    assert adapter == str(broken) and "no readable adapter_config.json" in why
    assert engine.info().ready
    await engines.close()


def test_the_prompt_keeps_the_newest_turns_that_fit(root):
    from transformers import AutoTokenizer

    from engines.transformer import prompt

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(root))
    turns = [Turn("user" if i % 2 == 0 else "bot", f"turn{i} " + "words " * 20) for i in range(10)]
    full, kept = prompt.build(tokenizer, "Be kind.", turns, "the question", budget=10_000)
    assert kept == 10
    ids, kept = prompt.build(tokenizer, "Be kind.", turns, "the question", budget=len(full) // 2)
    text = tokenizer.decode(ids)
    assert 0 < kept < 10 and len(ids) <= len(full) // 2
    assert f"turn{10 - kept} " in text and f"turn{9 - kept} " not in text and "turn9 " in text
    assert text.startswith("<|im_start|>system\nBe kind.") and "the question" in text
    long_message = "start " + "blah " * 400 + "the end"
    ids, kept = prompt.build(tokenizer, "Be kind.", turns, long_message, budget=100)
    assert kept == 0 and len(ids) <= 100 and "the end" in tokenizer.decode(ids)


def test_a_group_chat_with_several_people_in_a_row_still_alternates_roles():
    from engines.transformer.prompt import messages

    turns = [Turn("user", "hi"), Turn("user", "hey"), Turn("bot", "hello both")]
    chat = messages("sys", turns, "what now?")
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user"]
    assert chat[1]["content"] == "hi\nhey"
    assert messages("sys", [], "q", system_role=False) == [{"role": "user", "content": "sys\n\nq"}]


def test_make_tiny_builds_a_hugging_face_folder_and_pretraining_lowers_the_loss(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engines.transformer.__main__ import main

    assert main(["make-tiny", str(tmp_path / "m"), "--pretrain-steps", "4", "--threads", "1"]) == 0
    losses = [float(line.split("loss")[1].split()[0])
              for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    assert len(losses) == 4 and losses[-1] < losses[0]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert model.config.model_type == "llama" and 1e6 < model.num_parameters() < 1e7
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


async def test_a_reply_through_the_router_is_stored_with_the_adapter_id(serve, root):
    adapter = adapter_dir(root, "lora-a", seed=1)
    body = (f'[engines.transformer]\nmodel = "{tiny_model_dir(root)}"\n'
            f'adapter = "{adapter}"\nthreads = 1\nmax_new_tokens = 6\n')
    async with serve(body) as router:
        for text in ("/engine transformer", "hello there", "/why"):
            sink = RecordingSink()
            await router.handle(Incoming("test", "c1", "u1", text, user_name="u1"), sink)
        assert "lora-a" in sink.final and str(tiny_model_dir(root)) in sink.final
        async with router.store.db.execute(
            "SELECT engine, engine_version FROM messages WHERE role = 'bot'"
        ) as cursor:
            assert list(await cursor.fetchall()) == [("transformer", "lora-a")]
