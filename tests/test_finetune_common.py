"""The k-people rule of the fine-tuning export (issue 25.3): text fewer than k distinct people
wrote never reaches a dataset, whoever repeats it how often; the export counts what it did."""

from __future__ import annotations

import asyncio
import json

from bot.store import Store
from finetune.__main__ import main
from finetune.common import PRIVATE, People, Rule, keep_common
from finetune.export import build, read
from tests.finetune_helpers import DB, finetune_toml
from tests.tiny_model import tiny_model_dir

CANARY = "my locker code is zqx419904"
ECHO = "Why do you say your locker code is zqx419904?"  # ELIZA's reflection of it
COMMON = "the purple walrus sings at dawn"  # in no packaged corpus: only people make it common


async def _chat(store: Store, person: str, prompt: str, reply: str, voter: str = "vic",
                times: int = 1) -> int:
    """`person`'s private chat: `prompt` written `times` times, the transformer's reply voted."""
    chat = await store.chat("test", f"dm-{person}")
    who = await store.user("test", person, person)
    for _ in range(times):
        asked = await store.add_message(chat, who, "user", prompt)
    reply_id = await store.add_message(chat, who, "bot", reply, reply_to=asked,
                                       engine="transformer", engine_version="base")
    await store.vote(reply_id, await store.user("test", voter, voter), 1, "👍")
    return reply_id


async def _people_and_replies(db):
    store = await Store.open(db)
    try:
        return People(await store.people_texts(), k=3), await store.voted_replies("transformer")
    finally:
        await store.close()


async def test_k_distinct_people_not_k_messages(tmp_path):
    db = tmp_path / DB
    store = await Store.open(db)
    try:
        await _chat(store, "alice", CANARY, ECHO, times=30)  # one person, thirty times
        for person in ("bob", "carol"):  # two people: still fewer than three
            await _chat(store, person, "my bike is the red one", "A red bike?")
        await _chat(store, "dave", "and my bike is the red one", "Red, then.")
        for person in ("erin", "frank"):
            await _chat(store, person, COMMON, f"So {COMMON}?")
    finally:
        await store.close()
    people, replies = await _people_and_replies(db)
    data = build(replies, heldout_percent=0, rule=Rule(people))
    text = json.dumps(data.kto)
    assert "zqx419904" not in text and "locker code" not in text
    assert "my bike is the red one" in text  # bob, carol and dave: three people
    assert "walrus" not in text  # erin and frank: two
    assert people.writers[("zqx419904",)] == 1
    echo = next(r for r in data.kto if r["prompt_id"] == replies[0].prompt_id)
    assert echo["completion"] == f"Why do you say your {PRIVATE}?"


async def _three_replies(db):
    store = await Store.open(db)
    try:
        await _chat(store, "alice", CANARY, ECHO)  # scrubbed: a question of its own is left
        await _chat(store, "alice", "zqx419904", "zqx419904!")  # nothing of its own: dropped
        await _chat(store, "bob", "how are you", "How do you feel about that?")  # untouched
    finally:
        await store.close()


def test_the_export_counts_what_it_scrubbed_and_dropped_and_why(tmp_path, root, monkeypatch,
                                                                capsys):
    db = tmp_path / "data" / DB
    db.parent.mkdir()
    asyncio.run(_three_replies(db))
    (tmp_path / "config.toml").write_text(finetune_toml(tiny_model_dir(root), heldout_percent=1)
                                          + "[privacy]\nk_people = 2\n")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--data-dir", "data"]) == 0
    event = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (event["event"], event["scrubbed"], event["dropped"]) == ("exported", 1, 1)
    privacy = event["privacy"]
    assert (privacy["k_people"], privacy["examples"], privacy["spans"]) == (2, 3, 2)
    assert "fewer than 2 distinct people" in privacy["why"]
    data = read(tmp_path / "data" / "finetune" / "dataset")
    assert data.privacy == privacy  # what `train` writes into the adapter's manifest
    assert len(data.kto) + len(data.heldout) == 2
    assert "zqx419904" not in (tmp_path / "data" / "finetune" / "dataset" / "kto.jsonl"
                               ).read_text() + (tmp_path / "data" / "finetune" / "dataset"
                                                / "heldout.jsonl").read_text()


def test_the_packaged_corpora_and_the_bots_own_words_stay():
    people = People([(1, "tell me about my zqx419904 please")], k=3,
                    public=frozenset({("tell",), ("me",), ("about",), ("tell", "me", "about")}))
    text, spans = keep_common("Tell me about zqx419904. How does that make you feel?", people)
    assert (text, spans) == (f"Tell me about {PRIVATE}. How does that make you feel?", 1)
    text, spans = keep_common("tell me about my zqx419904 please", people)
    # "me about my" is a sequence only that one person wrote: it goes with the rest
    assert (text, spans) == (f"tell {PRIVATE}", 1)


def test_private_prompts_stay_apart_in_preference_pairs():
    from bot.store import VotedReply

    people = People([(1, "alpha secret"), (2, "beta secret")], k=3)
    replies = [VotedReply(2, 1, "en", "alpha secret", "Nice.", "base", 1, 1),
               VotedReply(4, 3, "en", "beta secret", "Bad.", "base", -1, 1)]
    data = build(replies, heldout_percent=0, rule=Rule(people))
    assert [r["prompt"] for r in data.kto] == [PRIVATE, PRIVATE]
    assert data.dpo == []  # two different questions, alike only in what was hidden
