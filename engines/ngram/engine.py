"""The n-gram engine: one modified Kneser-Ney model per language, trained on the packaged
corpora and on what k people wrote (the shared model), with each chat's own text as a layer
over it for that chat alone; replying with MegaHAL-style keyword-seeded search.

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

from engines.base import Capability, Conversation, Engine, EngineInfo, EngineSetup, Written

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
    # seconds between re-estimations of the shared models while what they learned from people
    # changes: a message counts at once in its chat, and in the shared models (about 0.3 s to
    # estimate with the corpora) at most this much later, once k people wrote a sequence
    estimate_every: float = field(default=2.0, metadata={"min": 0})
    # word sequences learned from people, held per language (k-anonymous counts and the chats'
    # layers together): past it the rarest go first; the corpora are never pruned
    max_learned_ngrams: int = field(default=200_000, metadata={"min": 1000})
    corpora: bool = True  # train on the packaged corpora too, not only on the chat
    # per language, folders of text files to train on as well: { de = ["/srv/texte"] }
    corpus_dirs: dict[str, list[str]] = field(default_factory=dict)


class NgramEngine(Engine):
    name: ClassVar[str] = "ngram"
    Options: ClassVar[type] = NgramOptions
    capabilities = frozenset({Capability.NEXT_WORDS, Capability.LEARNS, Capability.PROBE})

    def __init__(self, options: NgramOptions, setup: EngineSetup) -> None:
        super().__init__(options, setup)
        self.languages: dict[str, Any] = {}
        # One learning thread at a time per language (learn, withdraw); estimation runs beside
        # it from a copy, at most every `estimate_every` seconds, only when the shared models
        # would change.
        self._locks = {lang: asyncio.Lock() for lang in LANGUAGES}
        self._stale = dict.fromkeys(LANGUAGES, False)  # shared counts newer than the models
        self._estimators: dict[str, asyncio.Task | None] = dict.fromkeys(LANGUAGES)
        self._estimated_at = dict.fromkeys(LANGUAGES, -float("inf"))
        self._hurry = {lang: asyncio.Event() for lang in LANGUAGES}  # no more waiting
        self._pruners: dict[str, asyncio.Task | None] = dict.fromkeys(LANGUAGES)
        self.withdrawn = 0  # messages taken back since the start (a redundant /forget adds none)

    async def start(self) -> None:
        self.languages = await self._build()

    async def _build(self) -> dict[str, Any]:
        """The corpus counts (from their snapshot) plus the stored chat text, learned message
        by message (the store is the truth: nothing learned from people is saved here)."""
        from engines.ngram import corpus_cache  # numpy lives behind this import

        languages = {}
        for lang in LANGUAGES:
            languages[lang] = await asyncio.to_thread(
                corpus_cache.base_language, lang, self.options, Path(self.setup.data_dir),
                self.setup.k_people)
        stored = await self.setup.stored_texts()
        for lang, language in languages.items():
            mine = [m for m in stored if self._lang(m.lang) == lang]
            await asyncio.to_thread(_learn_all, language, mine)
            await asyncio.to_thread(language.estimate)
        return languages

    def _lang(self, lang: str) -> str:
        return lang if lang in LANGUAGES else self.setup.default_lang

    def info(self) -> EngineInfo:
        if not self.languages or any(x.models is None for x in self.languages.values()):
            return EngineInfo(ready=False, detail="counting n-grams")
        sizes = "; ".join(_size(lang, x) for lang, x in self.languages.items())
        return EngineInfo(ready=True, version=f"kn{self.options.order}", detail=sizes)

    def _language(self, lang: str) -> Any:
        return self.languages.get(lang) or self.languages[self.setup.default_lang]

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        from engines.ngram.reply import answer

        language = self._language(conv.lang)
        trace, words = await asyncio.to_thread(
            answer, language, conv.text, self.options, random.Random(), conv.chat_key
        )
        conv.trace.update(trace)
        if words is not None:  # too few words known: nothing to say, the bot words that
            yield words

    async def next_words(self, text: str, lang: str, k: int = 5,
                         chat: str = "") -> list[tuple[str, float]]:
        from engines.ngram.reply import most_likely_next

        return await asyncio.to_thread(most_likely_next, self._language(lang), text, k, chat)

    async def probe(self, context: str, continuations: list[str], lang: str,
                    chat: str = "") -> list[float]:
        from engines.ngram.probe import continuation_logprobs

        return await asyncio.to_thread(continuation_logprobs, self._language(lang), context,
                                       continuations, chat)

    async def learn(self, message: Written) -> None:
        """Count the message in its chat's layer and in the k-anonymous counts, in the
        learning thread: its chat has it at once; the shared models are estimated again
        (coalesced, at most every `estimate_every` seconds) only if a sequence reached k
        people. The cost is the message's, whatever was learned before."""
        lang = self._lang(message.lang)
        if lang not in self.languages:
            return
        language = self.languages[lang]
        async with self._locks[lang]:
            changed = await asyncio.to_thread(language.learn_message, message.text,
                                              message.person, message.chat)
        if changed:
            self._mark_stale(lang)
        if language.learned.over and self._pruners[lang] is None:
            self._pruners[lang] = asyncio.create_task(self._prune(lang), name=f"ngram-prune-{lang}")

    async def _prune(self, lang: str) -> None:
        """Back within the bound, a step at a time: messages are learned between steps."""
        try:
            done = False
            while not done:
                async with self._locks[lang]:
                    done, changed = await asyncio.to_thread(self.languages[lang].prune)
                if changed:
                    self._mark_stale(lang)
        finally:
            self._pruners[lang] = None

    async def withdraw(self, messages: list[Written]) -> None:
        """Subtract what these messages taught, from their chats' layers and the k-anonymous
        counts (a message of someone the engine holds nothing of is skipped: no work). Where a
        sequence fell below k people, returns once the shared models are estimated without it;
        one that still has k writers counts one fewer at the next estimation."""
        urgent = set()
        for lang in LANGUAGES:
            mine = [m for m in messages if self._lang(m.lang) == lang]
            if not mine or lang not in self.languages:
                continue
            async with self._locks[lang]:
                done, changed, left = await asyncio.to_thread(_withdraw_all,
                                                              self.languages[lang], mine)
            self.withdrawn += done
            if changed:
                self._mark_stale(lang)
            if left:
                urgent.add(lang)
                self._hurry[lang].set()
        await asyncio.gather(*(asyncio.shield(t) for lang in urgent
                               if (t := self._estimators[lang]) is not None))

    def _mark_stale(self, lang: str) -> None:
        self._stale[lang] = True
        if self._estimators[lang] is None:
            self._estimators[lang] = asyncio.create_task(self._estimate_while_stale(lang),
                                                         name=f"ngram-estimate-{lang}")

    async def _estimate_while_stale(self, lang: str) -> None:
        try:
            while self._stale[lang]:
                wait = self._estimated_at[lang] + self.options.estimate_every - time.monotonic()
                if wait > 0 and not self._hurry[lang].is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry[lang].wait(), wait)
                self._stale[lang] = False
                self._hurry[lang].clear()
                await asyncio.to_thread(self.languages[lang].estimate)
                self._estimated_at[lang] = time.monotonic()
        finally:
            self._estimators[lang] = None

    async def settle(self) -> None:
        """Wait until everything learned so far is in the shared models (estimating now)."""
        while pending := [t for t in [*self._pruners.values(), *self._estimators.values()]
                          if t is not None]:
            for event in self._hurry.values():
                event.set()
            await asyncio.gather(*pending)
        for lock in self._locks.values():  # a learn still counting
            async with lock:
                pass

    async def close(self) -> None:
        await self.settle()


def _learn_all(language: Any, messages: list[Written]) -> None:
    for m in messages:
        language.learn_message(m.text, m.person, m.chat)
        while language.learned.over and not language.prune()[0]:
            pass


def _withdraw_all(language: Any, messages: list[Written]) -> tuple[int, bool, bool]:
    """(messages taken back, whether the shared models must be estimated again, whether a
    sequence left them)."""
    done, changed = 0, False
    people = language.learned.people
    people.left = False
    # Decided once: every message handed of someone held is taken back (some may never have
    # been learned, a reply that failed, say: what they hold in common with the rest goes too).
    held = {m.person for m in messages if language.learned.messages.get(m.person)}
    for m in messages:
        if m.person in held:  # else nothing of theirs is held: no work
            changed |= language.withdraw_message(m.text, m.person, m.chat)
            done += 1
    left, people.left = people.left, False
    return done, changed, left


def _size(lang: str, language: Any) -> str:
    """"de 1,861 tokens from chatterbot-corpus; more: apt-get install fortunes-de"."""
    text = f"{lang} {language.models.tokens:,} tokens"
    if language.found.used:
        text += f" from {', '.join(language.found.used)}"
    if language.found.missing:
        text += f"; more: {', '.join(language.found.missing)}"
    return text
