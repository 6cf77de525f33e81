"""Replies the votes must not teach: the bot's own words are never exported, and a reply cut
short by the token cap is exported without an end of turn (issue 29.5, issue 32.0)."""

from __future__ import annotations

from pathlib import Path

from bot.app import App
from bot.config import load_config
from bot.frontends import FRONTENDS
from engines.registry import BUILTIN
from finetune import export as exporting
from tests.harness import RecordingSink, msg

PLUGIN = '[plugins]\nengines = { scripted = "tests.engines:ScriptedEngine" }\n'
CUT_TEXT = "And then the story went on and on and"


async def reply_and_vote(tmp_path: Path, prompt: str, engine_toml: str, value: int) -> str:
    """One message answered by the scripted engine (as configured), voted on by two people;
    returns what /why says of it."""
    path = tmp_path / "config.toml"
    path.write_text(PLUGIN + '[bot]\ndefault_engine = "scripted"\n' + engine_toml)
    config = load_config(path, FRONTENDS, BUILTIN, data_dir=str(tmp_path / "data"))
    async with App(config, [], env={}).serving() as router:
        await router.handle(msg(prompt), RecordingSink())
        store = router.store
        reply = await store.last_reply(await store.chat("test", "c1"))
        assert reply is not None
        for voter in ("bob", "carol"):
            await store.vote(reply.id, await store.user("test", voter, voter), value, "👍")
        why = RecordingSink()
        await router.handle(msg("/why"), why)
        return why.final


async def test_fallback_is_never_exported_and_a_cut_reply_has_no_end_of_turn(tmp_path, root):
    why = await reply_and_vote(tmp_path, "say nothing", '[engines.scripted]\nsays = ""\n', 1)
    assert "bot_words: no_reply" in why and "reward" not in why  # the bot's words: no reward
    why = await reply_and_vote(tmp_path, "tell a story",
                               f'[engines.scripted]\nsays = "{CUT_TEXT}"\ncut = true\n', 1)
    assert "cut: max_new_tokens" in why and "reward: -1.50 (the reward model of adapter ft1" in why
    why = await reply_and_vote(tmp_path, "ask back", '[engines.scripted]\nsays = "Why?"\n', -1)
    assert why.splitlines()[-1].startswith("reward: +1.25 (the reward model of adapter ft1")

    from bot.config import DB_FILE
    from bot.store import Store

    store = await Store.open(tmp_path / "data" / DB_FILE)
    try:
        replies = await store.voted_replies("scripted")
    finally:
        await store.close()
    assert len(replies) == 3  # all three were stored and voted on
    data = exporting.build(replies, heldout_percent=0)
    exporting.write(data, tmp_path / "export")

    written = "".join(p.read_text() for p in (tmp_path / "export").iterdir())
    assert "I do not know enough words" not in written and "say nothing" not in written
    assert data.counts() | {"dpo": 0} == {"sft": 1, "kto": 2, "dpo": 0, "heldout": 0,
                                          "cut": 1, "bot_words": 1}
    cut = next(r for r in data.kto if r["completion"] == CUT_TEXT)
    assert cut["cut"] is True and data.sft[0]["cut"] is True
    assert exporting.read(tmp_path / "export").marked == {"cut": 1, "bot_words": 1}

    from transformers import AutoTokenizer

    from finetune.batches import Encoder
    from tests.tiny_model import tiny_model_dir

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(root))
    encode = Encoder(tokenizer, lambda lang: "", max_tokens=96)
    assert encode("tell a story", CUT_TEXT, "en", cut=True).completion[-1] != \
        tokenizer.eos_token_id
    assert encode("ask back", "Why?", "en").completion[-1] == tokenizer.eos_token_id


async def test_adapters_id_shows_kl_fluency_and_reward_of_the_sampled_replies(serve):
    from bot.store import Adapter

    sampled = {"prompts": 16, "replies": 32, "kl": 0.0812, "fluency": 1.13,
               "reward": {"gain": 0.91, "gain_low": 0.4, "gain_high": 1.5}}
    evaluation = {"reason": "held-out preference accuracy 0.90", "new": {"accuracy": 0.9},
                  "sampled": sampled, "reward_model": {"accuracy": 0.77}}
    async with serve('admins = ["test:boss"]\n') as router:
        await router.store.add_adapter(Adapter("ft1", "tiny", "/nowhere", "rejected",
                                               {"evaluation": evaluation}))
        await router.store.add_adapter(Adapter("ft0", "tiny", "/nowhere", "rejected", {}))
        sink = RecordingSink()
        await router.handle(msg("/adapters ft1", user="boss"), sink)
        assert sink.final.splitlines()[-1] == (
            "ft1, its replies to 16 held-out prompts: KL from the base model 0.081 nats per "
            "token, fluency 1.13x the base model's perplexity, reward against the base "
            "model's replies +0.91 [+0.40, +1.50] (reward model's held-out pair accuracy 0.77)")
        sink = RecordingSink()
        await router.handle(msg("/adapters ft0", user="boss"), sink)
        assert sink.final.splitlines()[-1].startswith("ft0 was not judged on sampled replies")
