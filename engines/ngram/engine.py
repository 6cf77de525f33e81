"""The n-gram engine: one modified Kneser-Ney model per language, trained on the packaged
corpora and the chat, replying with MegaHAL-style keyword-seeded search.

Heavy imports (numpy and the modules that use it) happen in `start`, so importing this module
to read its Options stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engines.base import Capability, Conversation, Engine, EngineContext, EngineInfo

log = logging.getLogger(__name__)

LANGUAGES = ("en", "de")


@dataclass(frozen=True)
class NgramOptions:
    # Ranges as plain field metadata ("min", "above", "max"), checked by the config loader.
    order: int = field(default=3, metadata={"min": 1})  # n of the n-grams (KenLM's -o)
    # seconds of reply search per message, off the event loop
    time_budget: float = field(default=0.3, metadata={"above": 0})
    # longest reply, in words and punctuation marks
    max_tokens: int = field(default=30, metadata={"min": 1})
    # a reply never repeats this many training tokens in a row
    max_copy: int = field(default=7, metadata={"min": 2})
    # seconds between re-estimations while messages come in: each message is counted at once,
    # the models (about 0.3 s to estimate with the corpora) follow at most this much later
    estimate_every: float = field(default=2.0, metadata={"min": 0})
    corpora: bool = True  # train on the packaged corpora too, not only on the chat
    # per language, folders of text files to train on as well: { de = ["/srv/texte"] }
    corpus_dirs: dict[str, list[str]] = field(default_factory=dict)


class NgramEngine(Engine):
    name: ClassVar[str] = "ngram"
    Options: ClassVar[type] = NgramOptions
    capabilities = frozenset({Capability.NEXT_WORDS, Capability.LEARNS, Capability.PROBE})

    def __init__(self, options: NgramOptions, ctx: EngineContext) -> None:
        super().__init__(options, ctx)
        self.languages: dict[str, Any] = {}
        self._inbox: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
        self._locks = {lang: asyncio.Lock() for lang in LANGUAGES}
        self._updates: set[asyncio.Task] = set()
        # Learning: counted at once, estimated at most every `estimate_every` seconds.
        self._stale = dict.fromkeys(LANGUAGES, False)  # counts newer than the models
        self._estimators: dict[str, asyncio.Task | None] = dict.fromkeys(LANGUAGES)
        self._estimated_at = dict.fromkeys(LANGUAGES, -float("inf"))
        self._hurry = {lang: asyncio.Event() for lang in LANGUAGES}  # settle(): no more waiting
        self._relearning: asyncio.Task | None = None
        self._relearn_wanted = False

    async def start(self) -> None:
        self.languages = await self._build()

    async def _build(self) -> dict[str, Any]:
        """The corpus counts (from their snapshot) plus the stored chat text, estimated."""
        from engines.ngram import corpus_cache  # numpy lives behind this import

        languages = {}
        for lang in LANGUAGES:
            languages[lang] = await asyncio.to_thread(
                corpus_cache.base_language, lang, self.options, Path(self.ctx.data_dir)
            )
        chat: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
        for lang, text in await self.ctx.stored_texts():
            chat.get(lang, chat[self.ctx.default_lang]).append(text)
        for lang, language in languages.items():
            await asyncio.to_thread(language.learn, chat[lang])
            await asyncio.to_thread(language.estimate)
        return languages

    async def relearn(self) -> None:
        """Someone withdrew their text (/forget, /optout): counts cannot be taken back one
        message at a time, so the chat's part is rebuilt from what is still stored. Replies
        go on from the old models meanwhile; messages learned meanwhile wait in the inbox.
        Requests coalesce: while one rebuild runs, any number of new requests make one more,
        and each caller returns once a rebuild that started after its request is done."""
        self._relearn_wanted = True
        if self._relearning is None or self._relearning.done():
            self._relearning = asyncio.create_task(self._relearn_until_current(),
                                                   name="ngram-relearn")
        await asyncio.shield(self._relearning)

    async def _relearn_until_current(self) -> None:
        while self._relearn_wanted:
            self._relearn_wanted = False
            await self._rebuild()

    async def _rebuild(self) -> None:
        async with contextlib.AsyncExitStack() as held:
            for lock in self._locks.values():
                await held.enter_async_context(lock)
            for inbox in self._inbox.values():
                inbox.clear()  # stored before they were queued: the rebuild reads them
            self._stale = dict.fromkeys(LANGUAGES, False)  # the rebuild estimates them all
            self.languages = await self._build()

    def info(self) -> EngineInfo:
        if not self.languages or any(x.models is None for x in self.languages.values()):
            return EngineInfo(ready=False, detail="counting n-grams")
        sizes = "; ".join(_size(lang, x) for lang, x in self.languages.items())
        return EngineInfo(ready=True, version=f"kn{self.options.order}", detail=sizes)

    def _language(self, lang: str) -> Any:
        return self.languages.get(lang) or self.languages[self.ctx.default_lang]

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        from engines.ngram.reply import answer

        language = self._language(conv.lang)
        trace, words = await asyncio.to_thread(
            answer, language, conv.text, self.options, random.Random()
        )
        conv.trace.update(trace)
        if words is not None:  # too few words known: nothing to say, the bot words that
            yield words

    async def next_words(self, text: str, lang: str, k: int = 5) -> list[tuple[str, float]]:
        from engines.ngram.reply import most_likely_next

        return await asyncio.to_thread(most_likely_next, self._language(lang), text, k)

    async def probe(self, context: str, continuations: list[str], lang: str) -> list[float]:
        from engines.ngram.probe import continuation_logprobs

        return await asyncio.to_thread(continuation_logprobs, self._language(lang), context,
                                       continuations)

    async def learn(self, text: str, lang: str) -> None:
        """Queue the message: it is counted in a thread at once, and the models are estimated
        again from the counts at most every `estimate_every` seconds (one estimation for any
        number of messages meanwhile), so learning never queues behind whole re-estimations."""
        lang = lang if lang in self._inbox else self.ctx.default_lang
        self._inbox[lang].append(text)
        task = asyncio.create_task(self._count(lang), name=f"ngram-learn-{lang}")
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)

    async def _count(self, lang: str) -> None:
        async with self._locks[lang]:
            texts, self._inbox[lang] = self._inbox[lang], []
            if not texts or lang not in self.languages:
                return
            await asyncio.to_thread(self.languages[lang].learn, texts)
            self._stale[lang] = True
        if self._estimators[lang] is None:
            self._estimators[lang] = asyncio.create_task(self._estimate_while_stale(lang),
                                                         name=f"ngram-estimate-{lang}")

    async def _estimate_while_stale(self, lang: str) -> None:
        try:
            while self._stale[lang]:
                wait = self._estimated_at[lang] + self.options.estimate_every - time.monotonic()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry[lang].wait(), wait)
                async with self._locks[lang]:
                    if not self._stale[lang]:  # a rebuild came first
                        break
                    self._stale[lang] = False
                    await asyncio.to_thread(self.languages[lang].estimate)
                    self._estimated_at[lang] = time.monotonic()
        finally:
            self._estimators[lang] = None

    async def settle(self) -> None:
        """Wait until everything learned so far is in the models (estimating them now)."""
        for event in self._hurry.values():
            event.set()
        try:
            while pending := [*self._updates, *filter(None, self._estimators.values())]:
                await asyncio.gather(*pending)
        finally:
            for event in self._hurry.values():
                event.clear()

    async def close(self) -> None:
        await self.settle()


def _size(lang: str, language: Any) -> str:
    """"de 1,861 tokens from chatterbot-corpus; more: apt-get install fortunes-de"."""
    text = f"{lang} {language.models.tokens:,} tokens"
    if language.found.used:
        text += f" from {', '.join(language.found.used)}"
    if language.found.missing:
        text += f"; more: {', '.join(language.found.missing)}"
    return text
