"""Who the n-gram engine learns from: a chat from itself at once, every other chat only what
k distinct people wrote; /forget, /optout and retention take a person's text back out of both
scopes (and a redundant one does no work); learning stays within its bound, the corpora never
pruned. Through the real Router and Store where a person acts."""

from __future__ import annotations

import time

import pytest

from bot import learning
from engines.ngram.languages import Language
from engines.ngram.vocab import BOS
from tests.harness import say

NGRAM = "[engines.ngram]\ncorpora = false\ntime_budget = 0.05\nestimate_every = 0.0\n"
SECRET = "my locker code is zqx419904"


async def in_ngram(router, text: str, person: str, chat: str = "", group: bool = False) -> str:
    """`person` says `text` in `chat` (their private chat by default), whose engine is ngram."""
    chat = chat or f"dm-{person}"
    for line in ("/engine ngram", text):
        sink = await say(router, line, chat, person, is_group=group, is_admin=True)
    return sink.final or ""


async def offered(router, person: str, context: str, chat: str = "") -> list[str]:
    """The words /next offers `person` in `chat` (their private chat by default)."""
    await (await router.engines.get("ngram")).settle()
    reply = await in_ngram(router, f"/next {context}", person, chat)
    return [line.split("  ")[0].lower() for line in reply.splitlines()[1:]]


async def test_one_person_repeating_is_one_person_three_people_are_common(serve):
    async with serve(NGRAM) as router:
        for _ in range(5):
            await in_ngram(router, SECRET, "alice")
        await in_ngram(router, SECRET, "bob", "g1", group=True)
        assert "zqx419904" not in await offered(router, "mallory", "my locker code is")
        await in_ngram(router, SECRET, "carol")  # the third person
        assert "zqx419904" in await offered(router, "mallory", "my locker code is")


async def test_a_chats_layer_answers_that_chat_and_no_other(serve):
    async with serve(NGRAM) as router:
        await in_ngram(router, "robots polish shiny gears", "ann", "g1", group=True)
        await in_ngram(router, "hello there", "ben", "g2", group=True)
        assert "shiny" in await offered(router, "ben", "robots polish", "g1")  # at once
        assert "shiny" not in await offered(router, "ben", "robots polish", "g2")
        assert "shiny" not in await offered(router, "ann", "robots polish")  # her own DM
    async with serve(NGRAM) as router:  # rebuilt from the store at start
        assert "shiny" in await offered(router, "ben", "robots polish", "g1")
        assert "shiny" not in await offered(router, "ben", "robots polish", "g2")


async def common(router, phrase: str, people: list[str]) -> None:
    for person in people:
        await in_ngram(router, phrase, person)


async def test_forget_optout_and_retention_withdraw_from_both_scopes(serve):
    phrase, context = "purple kettles sing loudly", "purple kettles"
    async with serve(NGRAM) as router:
        await common(router, phrase, ["a", "b", "c"])
        assert "sing" in await offered(router, "eve", context)
        assert "sing" in await offered(router, "a", context)  # her own layer
        await in_ngram(router, "/forget", "a")
        assert "sing" not in await offered(router, "eve", context)  # two people left
        assert "sing" not in await offered(router, "a", context)
        assert "sing" in await offered(router, "b", context)  # his own chat still has it
        await in_ngram(router, "/optout", "b")
        assert "sing" not in await offered(router, "b", context)
        await common(router, phrase, ["d", "e", "f"])
        assert "sing" in await offered(router, "eve", context)
        await learning.expire(router.store, router.engines, time.time() + 1)  # all too old
        assert "sing" not in await offered(router, "eve", context)
        assert "sing" not in await offered(router, "d", context)


async def test_a_redundant_forget_or_optout_does_no_work(serve):
    async with serve(NGRAM) as router:
        await common(router, "green owls hoot at night", ["a", "b", "c"])
        engine = await router.engines.get("ngram")
        await engine.settle()
        await in_ngram(router, "/forget", "a")
        await in_ngram(router, "/optout", "b")
        await engine.settle()
        assert engine.withdrawn == 2
        estimations = engine.languages["en"].estimations
        for _ in range(3):
            await in_ngram(router, "/forget", "a")
            await in_ngram(router, "/optout", "b")
        await engine.settle()
        assert engine.withdrawn == 2  # nothing of theirs left to take back
        assert engine.languages["en"].estimations == estimations


def test_the_bound_prunes_learned_sequences_never_the_corpus():
    language = Language("en", 3, 7, k_people=1, max_learned=1000)
    language.learn(["The corpus says hello to everyone.", "A corpus line stays forever."])
    corpus_rows = [len(language.corpus.forward.table(k)[0]) for k in (2, 3)]
    for i in range(400):
        language.learn_message(f"message {i} has word{i} and word{i + 1} too", f"p{i % 7}",
                               f"chat{i % 3}")
        while language.learned.over:  # as the engine does, a step at a time
            language.prune()
        assert language.learned.entries <= 1000
    language.learn_message("everyone says hello to everyone", "p0", "chat0")
    assert language.learned.pruned > 0
    assert [len(language.corpus.forward.table(k)[0]) for k in (2, 3)] == corpus_rows
    model = language.estimate().forward
    vocab = language.corpus.vocab
    for word in ("corpus", "forever", "hello"):
        assert model.knows(vocab.ids[word])
    assert not model.knows(vocab.ids["word3"])  # pruned long ago, rarest and oldest first


def test_common_sequences_whose_context_is_not_common_leave_the_model_whole():
    """Two people share "zork blips late" but not what came before it: the shared model holds
    no n-gram without its context (KN estimation looks every context up), and stays a
    distribution."""
    language = Language("en", 3, 7, k_people=2)
    language.learn(["the code is here", "it is late"])
    language.learn_message("alice says zork blips late", "a", "c1")
    language.learn_message("bob thinks zork blips late", "b", "c2")
    language.learn_message("we said hello . we said hello", "a", "c1")
    language.learn_message("we said hello", "b", "c2")
    models = language.estimate()
    ids = language.corpus.vocab.ids
    for model in (models.forward, models.backward):
        for context in ([BOS], [ids["zork"], ids["blips"]], [ids["blips"], ids["late"]]):
            assert model.distribution(context).sum() == pytest.approx(1.0)
    assert models.forward.knows(ids["hello"])  # whole common sentences are learned
    assert models.forward.prob_of([BOS, ids["we"], ids["said"]], ids["hello"]) > 0.5


async def test_the_engine_keeps_to_its_bound_by_itself(tmp_path):
    from engines.base import EngineSetup, Written
    from engines.ngram.engine import NgramEngine, NgramOptions

    options = NgramOptions(corpora=False, max_learned_ngrams=1000, estimate_every=0.0)
    engine = NgramEngine(options, EngineSetup(data_dir=tmp_path, k_people=1))
    await engine.start()
    for i in range(300):
        await engine.learn(Written(f"note {i} says word{i} twice", "en", f"p{i % 5}", "c"))
    await engine.settle()
    learned = engine.languages["en"].learned
    assert learned.pruned > 0 and learned.entries <= 1000
    assert [w for w, _ in await engine.next_words("note 299 says", "en", 1, "c")] == ["word299"]


def test_the_vocabulary_people_bring_is_bounded_too():
    language = Language("en", 2, 7, k_people=1, max_learned=1000)
    language.learn(["a corpus line"])
    corpus_words = len(language.corpus.vocab)
    for i in range(1500):
        language.learn_message(f"zz{i}", "p", "c")
        while language.learned.over:
            language.prune()
    assert len(language.corpus.vocab) == corpus_words + 1000  # then new words are <unk>
    assert len(language.spellings) <= 3 * len(language.corpus.vocab)
