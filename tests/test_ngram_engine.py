"""The n-gram engine from the outside: it trains on whatever it is given, replies within its
time budget without echoing, rebuilds from a refused snapshot, answers /next."""

from __future__ import annotations

import asyncio

import pytest

from engines.base import Conversation
from engines.ngram.corpus_cache import snapshot_path
from engines.ngram.engine import NgramEngine
from tests.ngram_helpers import TWENTY_WORDS, said, started


async def reply(engine: NgramEngine, text: str, lang: str = "en") -> Conversation:
    conv = Conversation(chat_key="test:1", text=text, lang=lang)
    conv.trace["text"] = "".join([delta async for delta in engine.reply(conv)])
    return conv


@pytest.mark.parametrize("order", [3, 1, 2, 5])
async def test_a_twenty_word_corpus_trains_and_replies(tmp_path, order):
    assert sum(len(t.split()) for t in TWENTY_WORDS) == 20
    engine = await started(tmp_path, TWENTY_WORDS, order=order)
    assert engine.info().ready
    conv = await reply(engine, "what about the cat?")
    assert conv.trace["text"].strip()
    assert conv.trace["keywords"] == ["cat"]
    assert conv.trace["candidates"] >= 1
    assert conv.trace["order"] == order


async def test_replies_stay_within_the_time_budget_by_the_engines_own_accounting(tmp_path):
    engine = await started(tmp_path, TWENTY_WORDS, time_budget=0.05)
    for text in ["the cat", "dogs run", "hello there"]:
        trace = (await reply(engine, text)).trace
        assert trace["budget_ms"] == 50
        assert trace["stopped"] in ("budget", "max_candidates")
        assert trace["last_start_ms"] < trace["budget_ms"]  # none begun after the deadline


@pytest.mark.parametrize("message", ["the cat sat on the mat", "dogs run", "a dog ran to the cat",
                                     "my cat likes the warm mat"])
async def test_replies_never_echo_the_input(tmp_path, message):
    engine = await started(tmp_path, TWENTY_WORDS)
    for _ in range(5):
        text = (await reply(engine, message)).trace["text"]
        assert text.lower().rstrip(".!? ") != message
        words, said = text.lower().split(), message.split()
        runs = {tuple(said[i:i + 4]) for i in range(len(said) - 3)}
        assert not any(tuple(words[i:i + 4]) in runs for i in range(len(words) - 3))


async def test_learning_online_changes_what_comes_next(tmp_path):
    engine = await started(tmp_path, TWENTY_WORDS)
    before = dict(await engine.next_words("ki für alle ist sehr", "de", 5))
    assert "interessant" not in before
    for _ in range(3):
        await engine.learn(said("KI für alle ist sehr interessant.", "de"))
    await engine.settle()
    after = await engine.next_words("KI für alle ist sehr", "de", 5)
    assert after[0][0] == "interessant" and after[0][1] > 0.5
    assert [p for _, p in after] == sorted((p for _, p in after), reverse=True)


async def test_a_refused_snapshot_is_rebuilt_and_replaced(tmp_path, caplog):
    first = await started(tmp_path, [])
    path = snapshot_path(tmp_path, "en")
    assert path.is_file()
    path.write_bytes(b"garbage")
    caplog.set_level("INFO")
    engine = await started(tmp_path, TWENTY_WORDS)
    assert engine.info().ready
    assert "unreadable snapshot" in caplog.text and "rebuilding" in caplog.text
    assert path.read_bytes() != b"garbage"
    await first.close()


async def test_a_snapshot_is_reused_and_the_chat_is_read_anew(tmp_path):
    await started(tmp_path, ["zebras graze slowly"])  # chat text is never in the snapshot
    engine = await started(tmp_path, ["lions roar"])
    vocab = engine.languages["en"].corpus.vocab.ids
    assert "lions" in vocab and "zebras" not in vocab


async def test_a_model_from_the_snapshot_equals_the_one_built_from_the_corpora(tmp_path):
    fresh = await started(tmp_path, TWENTY_WORDS, corpora=True)
    assert snapshot_path(tmp_path, "en").is_file()
    reloaded = await started(tmp_path, TWENTY_WORDS, corpora=True)
    for lang, text in [("en", "the"), ("en", "what is your"), ("de", "wie geht"), ("en", "cat")]:
        assert await fresh.next_words(text, lang, 8) == await reloaded.next_words(text, lang, 8)
    assert (await reply(reloaded, "Do you like computers?")).trace["text"]


async def test_learning_many_messages_estimates_the_models_a_few_times_not_once_each(tmp_path):
    engine = await started(tmp_path, TWENTY_WORDS, estimate_every=60.0)
    german = engine.languages["de"]
    before = german.estimations
    for i in range(30):
        await engine.learn(said(f"Der Zauberer Nummer {i} kocht heute Suppe.", "de"))
    await engine.settle()
    # the first message right away, the other 29 in one estimation that settle() asked for
    assert german.estimations - before <= 2
    assert german.learned.messages["p"] == 30  # every message counted
    after = dict(await engine.next_words("Der Zauberer Nummer 7 kocht heute", "de", 3))
    assert max(after, key=after.get) == "Suppe"
    language = engine.languages["de"]
    vocab = language.corpus.vocab
    model = language.models.forward
    assert model.prob_of(vocab.encode(["zauberer", "nummer"]), vocab.ids["29"]) > 0.01


async def test_learned_text_reaches_the_models_by_itself_within_the_interval(tmp_path):
    engine = await started(tmp_path, TWENTY_WORDS, estimate_every=0.05)

    async def likeliest() -> list[str]:
        return [w for w, _ in await engine.next_words("KI für alle ist sehr", "de", 1)]

    await engine.learn(said("KI für alle ist sehr interessant.", "de"))
    await engine.learn(said("KI für alle ist sehr interessant.", "de"))
    for _ in range(200):  # no settle(): the background estimation does it (bounded wait)
        if await likeliest() == ["interessant"]:
            break
        await asyncio.sleep(0.05)
    assert await likeliest() == ["interessant"]
    assert engine.languages["de"].estimations <= 3  # start, then at most two for two messages
    await engine.close()
