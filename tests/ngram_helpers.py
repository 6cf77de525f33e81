"""What the n-gram tests share: engines started on a few texts, or on a corpora table of the
test's own (a temporary folder standing in for an installed corpus such as fortunes-de)."""

from __future__ import annotations

from engines.base import EngineSetup, Written
from engines.ngram.engine import NgramEngine, NgramOptions

TWENTY_WORDS = [  # 20 words in all
    "the cat sat on the mat",
    "a dog ran to the cat",
    "my cat likes the warm mat",
    "dogs run",
]


def said(text: str, lang: str = "en", person: str = "p", chat: str = "test:1") -> Written:
    return Written(text, lang, person, chat)


async def started(tmp_path, texts, k_people: int = 1, **options) -> NgramEngine:
    """An engine that learned `texts` (Written, or text of one person in chat test:1; with
    k_people 1 they reach the shared models too)."""
    async def stored():
        return [said(text) if isinstance(text, str) else text for text in texts]

    opts = NgramOptions(**({"corpora": False, "time_budget": 0.05} | options))
    engine = NgramEngine(opts, EngineSetup(data_dir=tmp_path, stored_texts=stored,
                                             k_people=k_people))
    await engine.start()
    return engine


async def started_on_corpora(data_dir, **options) -> NgramEngine:
    """An engine with the corpora (the table the test put in place) and nothing stored."""
    async def stored():
        return []

    opts = NgramOptions(**({"time_budget": 0.05} | options))
    engine = NgramEngine(opts, EngineSetup(data_dir=data_dir, stored_texts=stored))
    await engine.start()
    return engine
