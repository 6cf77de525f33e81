"""The ELIZA engine: one script per language, all per-chat memory in the chat's state.

The state is left in `Conversation.state` as a live ChatState (a dict, and its own JSON form):
a router that keeps the chat's state in memory hands it back unchanged, and the next message
costs no parsing or copying; one that stores it as JSON hands back a plain dict, checked once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from engines.base import Conversation, Engine, EngineInfo, EngineSetup
from engines.eliza.interpreter import respond
from engines.eliza.parser import load_script
from engines.eliza.script import Script
from engines.eliza.state import ChatState

SCRIPTS = Path(__file__).parent / "scripts"
BUNDLED = {"en": SCRIPTS / "doctor.en", "de": SCRIPTS / "doctor.de"}


@dataclass(frozen=True)
class ElizaOptions:
    # Your own scripts by language, e.g. { de = "my.de" }; other languages use the bundled DOCTOR.
    scripts: dict[str, str] = field(default_factory=dict)
    # Memories kept per chat, the oldest forgotten first; 0: no limit. The 1966 program kept
    # them until its storage ran out; a chat that lasts for months would grow without end.
    memory_limit: int = field(default=100, metadata={"min": 0})


class ElizaEngine(Engine):
    """Weizenbaum's 1966 ELIZA. Its answers are instant, so it answers on the event loop."""

    name: ClassVar[str] = "eliza"
    Options: ClassVar[type] = ElizaOptions

    def __init__(self, options: ElizaOptions, setup: EngineSetup) -> None:
        super().__init__(options, setup)
        self.scripts: dict[str, Script] = {}  # language -> script, read by start()

    async def start(self) -> None:
        paths = {**BUNDLED, **{lang: Path(p) for lang, p in self.options.scripts.items()}}
        self.scripts = {lang: load_script(path) for lang, path in paths.items()}

    def info(self) -> EngineInfo:
        if not self.scripts:
            return EngineInfo(ready=False, detail="scripts not loaded")
        return EngineInfo(ready=True, version=" ".join(s.version for s in self.scripts.values()))

    def script(self, lang: str) -> Script:
        """The chat language's script, else the bot's default language's, else English."""
        scripts = self.scripts
        return scripts.get(lang) or scripts.get(self.setup.default_lang) or scripts["en"]

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        script = self.script(conv.lang)
        state = ChatState.from_json(conv.state.get(script.name))
        answer = respond(script, state, conv.text)
        _forget_oldest(state, self.options.memory_limit)
        conv.state[script.name] = state
        conv.trace.update(answer.trace, script=script.name)
        conv.version = script.version
        yield answer.text

    def greeting(self, lang: str) -> str | None:
        return self.script(lang).greeting if self.scripts else None


def _forget_oldest(state: ChatState, limit: int) -> None:
    if limit > 0 and len(state.memories) > limit:
        del state.memories[:-limit]
