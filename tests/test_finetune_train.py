"""The training loop in-process on the tiny model: phases, the reference model, progress."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from bot.config import FinetuneOptions
from tests.finetune_helpers import dataset
from tests.tiny_model import tiny_model_dir


@pytest.fixture(autouse=True)
def one_process():
    """accelerate's state is per process: each test starts it and forgets it after."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def trainer(root, **options):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune import processes
    from finetune.batches import Encoder
    from finetune.train import Trainer

    torch.manual_seed(0)
    folder = tiny_model_dir(root)
    base = AutoModelForCausalLM.from_pretrained(folder)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    opts = replace(FinetuneOptions(), batch_size=4, learning_rate=0.01, **options)
    encoder = Encoder(AutoTokenizer.from_pretrained(folder), lambda lang: "Be brief.", 64)
    return Trainer(model, encoder, opts, processes.start("cpu")[0])


def test_dpo_starts_at_log_2_because_the_reference_is_the_policy_and_then_learns(root, capsys):
    data = dataset()
    assert data.dpo  # replies to the same prompt, liked and disliked: pairs
    result = trainer(root, preference="dpo", sft_steps=0, preference_steps=4).run(data)
    assert [p.name for p in result.phases] == ["dpo"]
    losses = [p["loss"] for p in result.curve]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-5)
    assert losses[-1] < losses[0]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["step"], x["total"]) for x in lines] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(x["eta"] >= 0 and x["phase"] == "dpo" for x in lines)


def test_kto_starts_at_its_balanced_half_after_sft_and_dpo_falls_back_to_kto(root):
    data = dataset()
    data.dpo = []
    # no KL term: after SFT it would add the adapter's distance from the base to the loss
    result = trainer(root, preference="dpo", sft_steps=2, preference_steps=2,
                     kl_weight=0.0).run(data)
    assert [(p.name, p.steps) for p in result.phases] == [("sft", 2), ("kto", 2)]
    first_kto = next(p["loss"] for p in result.curve if p["phase"] == "kto")
    assert first_kto == pytest.approx(0.5, abs=1e-5)  # 3 liked, 3 disliked: weights 1; r = 0
    assert all(math.isfinite(p["loss"]) for p in result.curve)


def lora_weights(model):
    return [p.detach().clone() for n, p in model.named_parameters() if "lora_" in n]


def test_a_nan_loss_stops_training_with_the_step_and_no_nan_weights(root):
    import torch

    from finetune.train import TrainingDiverged

    job = trainer(root, sft_steps=3, preference_steps=0, kl_weight=0.0)  # one pass a step
    calls = []

    def nan_on_second_pass(module, inputs, output):  # as a bad CUDA kernel would
        calls.append(1)
        return output * float("nan") if len(calls) == 2 else output

    job.model.get_output_embeddings().register_forward_hook(nan_on_second_pass)
    before = lora_weights(job.model)
    with pytest.raises(TrainingDiverged, match=r"SFT step 2 of 3: the loss is nan; no adapter"):
        job.run(dataset())
    after = lora_weights(job.model)
    assert all(torch.isfinite(w).all() for w in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # step 1 ran


def test_a_nan_gradient_stops_training_before_the_weights_take_it(root):
    import torch

    from finetune.train import TrainingDiverged

    job = trainer(root, sft_steps=2, preference_steps=0)
    first = next(p for n, p in job.model.named_parameters() if "lora_A" in n)
    first.register_hook(lambda grad: grad * float("nan"))
    before = lora_weights(job.model)
    with pytest.raises(TrainingDiverged, match=r"SFT step 1 of 2: a gradient is not finite"):
        job.run(dataset())
    assert all(torch.equal(a, b) for a, b in zip(before, lora_weights(job.model), strict=True))


def test_accumulation_over_micro_batches_takes_the_same_steps_as_one_whole_batch(root):
    import torch

    whole = trainer(root, sft_steps=2, preference_steps=2)
    parts = trainer(root, sft_steps=2, preference_steps=2, micro_batch_size=1)
    assert (whole.batching.accumulation, parts.batching.accumulation) == (1, 4)
    one, four = whole.run(dataset()), parts.run(dataset())
    assert [p["loss"] for p in four.curve] == pytest.approx([p["loss"] for p in one.curve],
                                                            abs=1e-5)
    for a, b in zip(lora_weights(whole.model), lora_weights(parts.model), strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=0)


def test_the_kl_term_keeps_the_adapter_nearer_the_base_model(root):
    """SFT alone, the same steps with and without the KL term: the term holds the adapter's
    next-token distributions at the trained replies nearer the base model's."""
    import torch

    from finetune.batches import collate, mean_kl, reference_log_probs

    data = dataset()
    kl = {}
    for weight in (0.0, 20.0):
        trained = trainer(root, sft_steps=6, preference_steps=0, kl_weight=weight)
        trained.run(data)
        model = trained.model
        batch = collate([trained.encode(r["prompt"], r["completion"], r["lang"]) for r in data.sft],
                        trained.pad_id, "cpu")
        with torch.no_grad(), model.disable_adapter():
            reference = reference_log_probs(model, batch)
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            log_p = logits.logits[:, :-1].float().log_softmax(-1)
        kl[weight] = float(mean_kl(log_p, reference, batch["target"][:, 1:]).mean())
    assert kl[0.0] > 0.05 and kl[20.0] < kl[0.0] / 2
