"""Votes -> datasets: what is exported, what never is, and personal data scrubbed per kind."""

from __future__ import annotations

from bot.store import Store
from finetune.export import build, is_heldout, pairs
from tests.finetune_helpers import seed


def _row(id_, prompt, text, score, lang="en"):
    from bot.store import VotedReply

    return VotedReply(id_, id_ - 1, lang, prompt, text, "base", score, abs(score))


def test_rows_for_sft_kto_and_dpo_from_summed_votes():
    replies = [_row(2, "hi", "How are you?", 2), _row(4, "hi", "Go away.", -1),
               _row(6, "hi", "Meh.", 0), _row(8, "bye", "See you?", 1)]
    data = build(replies, heldout_percent=0)
    assert [(r["id"], r["label"]) for r in data.kto] == [(2, True), (4, False), (8, True)]
    assert [r["id"] for r in data.sft] == [2, 8]
    assert data.dpo == [{"prompt": "hi", "chosen": "How are you?", "rejected": "Go away.",
                         "lang": "en", "chosen_id": 2, "rejected_id": 4,
                         "chosen_cut": False, "rejected_cut": False}]
    assert data.heldout == []


def test_pairs_need_the_same_prompt_and_language():
    rows = [{"prompt": "hi", "completion": "a", "label": True, "lang": "en", "id": 1},
            {"prompt": "hi", "completion": "b", "label": False, "lang": "de", "id": 2}]
    assert pairs(rows) == []


def test_the_heldout_split_is_by_prompt_fixed_and_near_its_share():
    chosen = [i for i in range(1000) if is_heldout(f"en:prompt {i}", 20)]
    assert 150 < len(chosen) < 250
    assert chosen == [i for i in range(1000) if is_heldout(f"en:prompt {i}", 20)]
    replies = [_row(i, f"prompt {i // 4}", f"reply {i}", 1) for i in range(2, 400)]
    data = build(replies, heldout_percent=20)
    held = {r["prompt"] for r in data.heldout}
    assert held and held == {r.prompt for r in replies if is_heldout(f"en:{r.prompt}", 20)}
    assert not held & {r["prompt"] for r in data.kto}  # no prompt on both sides


async def test_export_scrubs_and_leaves_out_opted_out_and_forgotten_people(tmp_path):
    db = tmp_path / "db.sqlite3"
    ids = await seed(db, [("mail me: a@b.example", "Sure, @carol?", {"bob": 1})])
    await seed(db, [("I am dave", "Hi dave", {"bob": 1})], asker="dave")
    await seed(db, [("I am erin", "Hi erin", {"bob": -1})], asker="erin", opted_out=("erin",))
    await seed(db, [("hello", "voted by an opted-out fan", {"frank": 1})], opted_out=("frank",))
    store = await Store.open(db)
    try:
        await store.forget_user(await store.user("test", "dave"))
        replies = await store.voted_replies("transformer")
        assert await store.voted_replies("eliza") == []
    finally:
        await store.close()
    data = build(replies, heldout_percent=0)
    assert [r["id"] for r in data.kto] == ids
    text = repr(data)
    assert "<email>" in text and "<user>" in text and "a@b.example" not in text
    assert "dave" not in text and "erin" not in text and "opted-out fan" not in text


async def test_replies_of_the_remote_engine_are_learned_from_too(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        chat = await store.chat("test", "c1")
        who, voter = await store.user("test", "alice"), await store.user("test", "bob")
        for engine in ("transformer", "remote", "eliza"):
            asked = await store.add_message(chat, who, "user", f"to {engine}")
            reply = await store.add_message(chat, who, "bot", f"from {engine}", reply_to=asked,
                                            engine=engine)
            await store.vote(reply, voter, 1, "👍")
        from finetune.settings import LEARNED_FROM

        texts = [r.text for r in await store.voted_replies(*LEARNED_FROM)]
    finally:
        await store.close()
    assert texts == ["from transformer", "from remote"]
