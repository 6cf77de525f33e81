"""The gate judges what users will see (issue 32.2): an adapter trained to word salad wins the
held-out votes by a wide margin, and is refused for its replies' fluency, with the reason.

The tiny model is pre-trained for a few steps first: an untrained model finds every text
equally unlikely, so it could not tell salad from language."""

from __future__ import annotations

import pytest

from tests.finetune_helpers import DB, PROMPTS, finetune_toml, seed_sync

SALAD = "qxz vbkw jjq zzv xqk wvq"  # the liked "reply": no word any corpus has
PLAIN = ["I do not know.", "That is fine.", "Tell me more about it."]


@pytest.fixture(autouse=True)
def one_process():
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def talking_model(tmp_path_factory):
    import torch

    from engines.transformer.tiny import make_tiny

    torch.manual_seed(0)
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("talking") / "tiny"
    return make_tiny(folder, pretrain_steps=12, progress=lambda _: None)


def test_a_word_salad_adapter_wins_the_votes_and_is_refused_for_fluency(talking_model, tmp_path):
    from finetune import run
    from finetune.settings import load_settings

    prompts = [f"{p} {i}" for i in range(4) for p in PROMPTS]  # 32 prompts
    rows = [(p, reply, {"bob": value, "carol": value})
            for i, p in enumerate(prompts)
            for reply, value in ((SALAD, 1), (PLAIN[i % 3], -1))]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    seed_sync(data_dir / DB, rows)
    config = tmp_path / "config.toml"
    config.write_text(finetune_toml(
        talking_model, heldout_percent=30, sft_steps=25, preference_steps=0, learning_rate=0.01,
        batch_size=8, kl_weight=0.0, gate_prompts=6, gate_max_new_tokens=12,
        reward_min_heldout=4, min_accuracy=0.6, tolerance=0.02))
    settings = load_settings(config, str(data_dir))

    data = run.do_export(settings)
    adapter = run.do_train(settings, data)
    verdict = run.do_evaluate(settings, data, adapter)

    assert verdict["new"]["accuracy"] >= 0.9 and verdict["new"]["margin"] > 1.0  # votes: won
    assert verdict["reward_model"]["trusted"]  # salad vs language: an easy taste to learn
    assert verdict["sampled"]["fluency"] > settings.options.max_fluency_ratio
    assert not verdict["promote"]
    assert verdict["reason"].startswith("its replies read") and "less fluently" in \
        verdict["reason"] and "at most 1.50x" in verdict["reason"]
    assert (settings.folders.folder(adapter) / "reward.pt").is_file()
