"""The engine contract: what an engine is handed, what it gives back, and every member the bot
calls. Engines import nothing from the bot; the bot imports this.

An engine module must be cheap to import (stdlib only at the top; torch and friends inside
`start`), because the registry imports every engine class to read its `Options` when the
configuration is checked. Loading the engine itself (weights, counts) happens in `start`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

Role = Literal["user", "bot"]


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    user_name: str = ""


@dataclass
class Conversation:
    """What an engine sees of a chat, and what it says about the reply it made.

    Handed in: the new `text` and recent `turns`; `state`, the engine's own memory for this
    chat (JSON-able; persisted by the bot, empty after /reset), so an engine object shared by
    many chats keeps nothing per chat itself; `adapter`, the adapter this chat is pinned to
    ("" for the active one, "base" for none), for engines that serve adapters.
    An engine updates `state` in place and may leave live objects in it that are JSON-able as
    they stand (ELIZA's ChatState is a dict): a bot that keeps the dict in memory between
    messages hands them back as they were, and the next message parses nothing. Since the dict
    handed back is the one handed in, a bot that writes only changed state compares what it
    serialises, not the objects.
    Filled in during a reply: `trace` explains it (/why shows it later); `version` names what
    made it when that differs from `info().version` (the adapter a reply began with, say).
    """

    chat_key: str
    text: str
    lang: str = "en"
    turns: list[Turn] = field(default_factory=list)
    user_name: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    adapter: str = ""
    trace: dict[str, Any] = field(default_factory=dict)
    version: str = ""


# Trace keys that say what a stored reply is, read by the fine-tuning export:
# CUT: the reply did not end where the engine would have ended it (its token cap, the bot
# stopping, the chat's length limit); the value says which. Its last token is no end of turn.
# BOT_WORDS: the text is (or holds) the bot's own words, not the engine's (a fallback, an
# apology, a "cut off" mark); the value names them. Such a reply is never training data.
CUT = "cut"
BOT_WORDS = "bot_words"


@dataclass(frozen=True)
class EngineInfo:
    ready: bool
    version: str = ""
    detail: str = ""  # why not ready, or a one-line description when ready


class Capability(enum.StrEnum):
    """What an engine can do beyond replying; the bot asks `engine.can(...)`, never tries."""

    NEXT_WORDS = "next_words"  # next_words(): the most likely next words, with probabilities
    LEARNS = "learns"  # learn() / withdraw(): learns from the chat while it runs
    ADAPTERS = "adapters"  # use_adapter(): serves LoRA adapters, swapped in at run time
    PROBE = "probe"  # probe(): the probability of whole continuations after a context
    REWARD = "reward"  # reward(): a reply's reward under the reward model trained on the votes


@dataclass(frozen=True)
class Written:
    """A message a person wrote, as engines that learn are handed it. `person` and `chat` are
    opaque keys ("platform:id"); `chat` is the Conversation's `chat_key`, so what a chat
    taught an engine can be used to answer that chat alone."""

    text: str
    lang: str
    person: str
    chat: str


async def _nothing() -> list[Written]:
    return []


async def _no_adapter() -> str:
    return ""


async def _unheard(adapter_id: str, why: str) -> None:
    return None


@dataclass(frozen=True)
class EngineSetup:
    """What the bot lends an engine: a folder of its own, the stored chat text and adapters.

    `stored_texts` returns the stored user messages of people who have not opted out, oldest
    first: what engines that learn from the chat learn again at every start (the store is the
    truth; lang "" is the default language). `adapters_dir` holds one folder per adapter id;
    `active_adapter` returns the id that serves when an engine starts ("" for the base model).
    `k_people` ([privacy] k_people): what answers other chats learns a word sequence only once
    this many distinct people wrote it. `adapter_broken(id, why)` tells the bot that an
    adapter cannot be loaded (the engine serves without it): the bot marks it broken and tells
    its admins.
    """

    data_dir: Path
    default_lang: str = "en"
    stored_texts: Callable[[], Awaitable[list[Written]]] = _nothing
    adapters_dir: Path | None = None
    active_adapter: Callable[[], Awaitable[str]] = _no_adapter
    adapter_broken: Callable[[str, str], Awaitable[None]] = _unheard
    k_people: int = 3


@dataclass(frozen=True)
class NoOptions:
    """For engines without settings: an empty `[engines.NAME]` table."""


class Engine(ABC):
    """A reply engine. Subclass it, set `name` (and `Options`, `capabilities`), write `reply`;
    override the rest where the engine has them. These are all the members the bot calls."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    # Cheap to start and worth knowing at once: /engines and /readyz start it to tell whether it
    # can answer (the remote engine: one health check) rather than say "loads on first use".
    start_when_asked: ClassVar[bool] = False

    @classmethod
    def missing(cls, options: Any) -> str:
        """What this engine needs that is not installed, and how to install it, in one line;
        found without starting it (no import of the heavy parts). "" when nothing is missing."""
        return ""

    def __init__(self, options: Any, setup: EngineSetup) -> None:
        self.options = options
        self.setup = setup

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    async def start(self) -> None:
        """Load what the engine needs; raise with a clear message if it cannot."""

    async def close(self) -> None:
        """Free what `start` took."""

    def info(self) -> EngineInfo:
        return EngineInfo(ready=True)

    def progress(self) -> str:
        """While `start` runs: how far it got, in one line ("downloading ...: 12 of 270 MB"),
        or "" when there is nothing to tell; /engines shows it beside "loading"."""
        return ""

    @abstractmethod
    def reply(self, conv: Conversation) -> AsyncIterator[str]:
        """The reply as text deltas; nothing at all when the engine has nothing to say (the
        bot words that). Blocking work runs off the event loop."""

    def greeting(self, lang: str) -> str | None:
        return None

    async def learn(self, message: Written) -> None:
        """LEARNS: a new chat message, stored, from someone who has not opted out. What it
        teaches may answer its own chat at once; other chats only what `k_people` people
        wrote."""

    async def withdraw(self, messages: list[Written]) -> None:
        """LEARNS: these messages were learned and are withdrawn (/forget, /optout, retention):
        take back what they taught, from every scope. Empty: nothing to do."""

    async def next_words(self, text: str, lang: str, k: int = 5,
                         chat: str = "") -> list[tuple[str, float]]:
        """NEXT_WORDS: the k most likely next words after `text`, with their probabilities,
        as the engine answers `chat` (a chat_key; "" for no chat in particular)."""
        return []

    async def probe(self, context: str, continuations: list[str], lang: str,
                    chat: str = "") -> list[float]:
        """PROBE: the natural log-probability of each whole continuation after `context` (the
        sum over its tokens, in the engine's own tokenisation), in the order given, as the
        engine answers `chat`."""
        return []

    async def reward(self, prompt: str, reply: str, lang: str,
                     cut: bool) -> tuple[float, str] | None:
        """REWARD: (the reward of `reply` to `prompt`, the adapter whose reward model gave it)
        under the reward model of the active adapter; None when it has none."""
        return None

    async def use_adapter(self, adapter_id: str) -> str:
        """ADAPTERS: serve `adapter_id` ("" for the base model) from now on; returns the new
        version."""
        return self.info().version


class EngineUnavailable(Exception):
    """The engine cannot answer now; the message says why, in one line."""
