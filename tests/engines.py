"""Engines for tests, loaded through [plugins] engines like anyone's own engine would be."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

from engines.base import CUT, Capability, Conversation, Engine, EngineInfo


@dataclass(frozen=True)
class EchoOptions:
    prefix: str = "echo:"
    delay: float = 0.0  # seconds to think before answering, per chunk


class EchoEngine(Engine):
    """Streams back the message word by word; counts turns per chat in its state."""

    name: ClassVar[str] = "echo"
    Options: ClassVar[type] = EchoOptions
    capabilities = frozenset({Capability.NEXT_WORDS})

    def info(self) -> EngineInfo:
        return EngineInfo(ready=True, version="echo-1")

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        conv.state["turns"] = conv.state.get("turns", 0) + 1
        conv.trace["turn"] = conv.state["turns"]
        conv.trace["history"] = len(conv.turns)
        yield self.options.prefix
        for word in conv.text.split():
            await asyncio.sleep(self.options.delay)
            yield " " + word

    def greeting(self, lang: str) -> str | None:
        return "Hallo, ich wiederhole." if lang == "de" else "Hello, I repeat."

    async def next_words(self, text: str, lang: str, k: int = 5,
                         chat: str = "") -> list[tuple[str, float]]:
        words = text.split()
        return [(w, 1 / len(words)) for w in words[:k]]


class BrokenEngine(Engine):
    """Raises in the middle of a reply."""

    name: ClassVar[str] = "broken"

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        yield "half a thought"
        raise RuntimeError("the engine broke")


class HangingEngine(Engine):
    """Never finishes a reply."""

    name: ClassVar[str] = "hanging"

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        await asyncio.Event().wait()
        yield ""


class UnloadableEngine(Engine):
    """Fails to start, as an engine with missing weights would."""

    name: ClassVar[str] = "unloadable"

    async def start(self) -> None:
        raise RuntimeError("weights not found: set [engines.unloadable] model")

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        raise AssertionError("never started, never asked")
        yield ""


@dataclass(frozen=True)
class ScriptedOptions:
    says: str = ""  # the whole reply ("": nothing, so the bot answers with its fallback)
    cut: bool = False  # marks the reply as ended by the token cap, as the transformer does


class ScriptedEngine(Engine):
    """Says one fixed text, and marks it cut short when told to; rewards what it said."""

    name: ClassVar[str] = "scripted"
    Options: ClassVar[type] = ScriptedOptions
    capabilities = frozenset({Capability.REWARD})

    async def reward(self, prompt: str, reply: str, lang: str,
                     cut: bool) -> tuple[float, str] | None:
        return (-1.5 if cut else 1.25, "ft1") if reply == self.options.says else None

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        if self.options.cut:
            conv.trace[CUT] = "max_new_tokens"
        if self.options.says:
            yield self.options.says


class AdaptingEngine(Engine):
    """Serves adapters as the transformer does, without a model: each reply names the adapter
    it began with, "[ID] text" ("[base] text" for none)."""

    name: ClassVar[str] = "adapting"
    capabilities = frozenset({Capability.ADAPTERS})

    def __init__(self, options, setup) -> None:
        super().__init__(options, setup)
        self.active = ""

    async def start(self) -> None:
        self.active = await self.setup.active_adapter()

    def info(self) -> EngineInfo:
        return EngineInfo(ready=True, version=self.active or "base")

    async def use_adapter(self, adapter_id: str) -> str:
        self.active = "" if adapter_id == "base" else adapter_id
        return self.info().version

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        conv.version = conv.adapter or self.info().version
        yield f"[{conv.version}] {conv.text}"


class StuckAdaptingEngine(AdaptingEngine):
    """Serves the adapter it started with and cannot load another (a server that lost its
    LoRA support, say)."""

    name: ClassVar[str] = "stuck"

    async def use_adapter(self, adapter_id: str) -> str:
        raise RuntimeError(f"cannot load adapter {adapter_id or 'base'}: out of memory")


class FlakyAdaptingEngine(AdaptingEngine):
    """Fails its next `fails` swaps (a GPU full for a while), then swaps as AdaptingEngine."""

    name: ClassVar[str] = "flaky"

    def __init__(self, options, setup) -> None:
        super().__init__(options, setup)
        self.fails = 0
        self.tries = 0

    async def use_adapter(self, adapter_id: str) -> str:
        self.tries += 1
        if self.fails:
            self.fails -= 1
            raise RuntimeError("CUDA out of memory")
        return await super().use_adapter(adapter_id)


class LateAdaptingEngine(AdaptingEngine):
    """Reads the active adapter as it starts, then takes longer (loading its model) before it
    joins the loaded engines: while `hold` is set to an unset event it waits there."""

    name: ClassVar[str] = "late"
    hold: ClassVar[asyncio.Event | None] = None
    read: ClassVar[asyncio.Event | None] = None  # set once it read the active adapter

    async def start(self) -> None:
        await super().start()
        if self.read is not None:
            self.read.set()
        if self.hold is not None:
            await self.hold.wait()


class BadFilesAdaptingEngine(AdaptingEngine):
    """Finds every adapter's files unusable, as the transformer does a folder cut short: it
    tells the bot (which marks the adapter broken) and keeps what it served."""

    name: ClassVar[str] = "badfiles"

    async def use_adapter(self, adapter_id: str) -> str:
        if adapter_id in ("", "base"):
            return await super().use_adapter(adapter_id)
        await self.setup.adapter_broken(adapter_id, "its weights are cut short")
        raise ValueError(f"adapter {adapter_id} cannot be loaded: its weights are cut short")


@dataclass(frozen=True)
class OwnAdapterOptions:
    adapter: str = ""  # as [engines.transformer] adapter: the adapter to start with


class OwnAdapterEngine(AdaptingEngine):
    """Starts with the adapter its options name, if any, as the transformer does."""

    name: ClassVar[str] = "own"
    Options: ClassVar[type] = OwnAdapterOptions

    async def start(self) -> None:
        self.active = self.options.adapter or await self.setup.active_adapter()
