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
    assert verdict["decided_by"] == "sampled replies"


# The gate's ruling when the held-out votes and the sampled replies disagree (finetune/ruling.py).
# The figures are those of issue 32's real-model run (SmolLM2-135M, seed 0, the "you" taste):
# the votes unsure (0.50, lower bound 0.34), the sampled replies winning under a reward model
# that ranks 0.86 of 40 held-out votes right (lower bound 0.74).

UNSURE = {"accuracy": 0.50, "accuracy_low": 0.34, "margin": 0.0, "liked_logp": -2.0}
BASE = {"accuracy": 0.5, "accuracy_low": 0.5, "margin": 0.0, "liked_logp": -2.0}


def judged(fluency=1.43, kl=0.27, reward_low=0.74, gain_low=1.98, heldout=40):
    sampled = {"fluency": fluency, "kl": kl,
               "reward": {"base": 0.1, "candidate": 2.8, "gain": 2.72, "gain_low": gain_low,
                          "gain_high": 3.39}}
    check = {"accuracy": 0.86, "accuracy_low": reward_low, "heldout": heldout,
             "trusted": heldout >= 30 and reward_low > 0.5}
    return {"sampled": sampled, "reward_model": check}


def ruled(new=UNSURE, active=BASE, **figures):
    from bot.config import FinetuneOptions
    from finetune import evaluate, ruling

    opts = FinetuneOptions()
    votes = evaluate.gate(new, active, opts.tolerance, opts.min_accuracy)
    return ruling.rule(votes, {"new": new, "active": active}, judged(**figures), opts)


def test_a_reward_model_that_passes_the_votes_bar_lets_the_sampled_replies_decide():
    verdict = ruled()
    assert verdict.promote and verdict.decided_by == "sampled replies"
    assert "reward +2.72 [+1.98, +3.39]" in verdict.reason
    assert "the held-out votes alone were unsure: held-out preference accuracy 0.50" \
        in verdict.reason


def test_the_votes_stay_in_charge_unless_the_reward_model_stands_in_and_they_are_not_against():
    weak = ruled(reward_low=0.55)  # trusted (above chance) but below min_accuracy: no stand-in
    assert not weak.promote and weak.decided_by == "held-out votes"
    assert weak.reason.startswith("held-out preference accuracy 0.50 is not surely above 0.60")
    assert not ruled(heldout=28).promote  # too few held-out votes to trust it at all
    against = ruled(new=UNSURE | {"accuracy": 0.40})  # worse than the base model's chance
    assert not against.promote and "worse than the active adapter's" in against.reason
    losing = ruled(gain_low=-0.1)  # the reward model stands in, and the replies do not win
    assert not losing.promote and losing.decided_by == "sampled replies"
    assert losing.reason.startswith("the reward model does not surely prefer its replies")


def test_language_refuses_first_even_when_votes_and_reward_say_yes():
    won = {"accuracy": 0.95, "accuracy_low": 0.9, "margin": 2.0, "liked_logp": -1.0}
    both = ruled(new=won)
    assert both.promote and both.decided_by == "held-out votes and sampled replies"
    for figures, start in (({"fluency": 1.6}, "its replies read 1.60x less fluently"),
                           ({"kl": 0.6}, "its replies moved 0.60 nats per token")):
        verdict = ruled(new=won, **figures)
        assert not verdict.promote and verdict.reason.startswith(start)


def test_a_coins_reward_model_never_stands_in_for_the_votes():
    """Coin-flip votes on replies whose features cluster by prompt (as replies to one prompt
    do): trusted (lower bound above 0.5) now and then by chance, never past min_accuracy."""
    import torch

    from bot.config import FinetuneOptions
    from finetune import reward, ruling

    opts = FinetuneOptions()
    trusted = 0
    for seed in range(30):
        generator = torch.Generator().manual_seed(seed)
        prompts = torch.randn(40, 64, generator=generator)
        x = prompts.repeat_interleave(2, 0) + 0.5 * torch.randn(80, 64, generator=generator)
        liked = torch.rand(80, generator=generator) < 0.5
        rows = [{"label": bool(v), "lang": "en", "prompt": str(i // 2)}
                for i, v in enumerate(liked[40:].tolist())]
        check = reward.check(reward.fit(x[:40], liked[:40]), x[40:], rows, 30)
        trusted += check["trusted"]
        assert not ruling.stands_in(check, opts), check
    assert trusted <= 6  # about 5% by design; more would say the check itself is broken
