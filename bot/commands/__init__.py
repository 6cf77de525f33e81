"""Platform-neutral slash commands: the same words in every frontend.

A command is an async function of a CommandCall that returns the text to answer with. It
declares its argument once (name, required or not, choices); `/help`, the Telegram menu and
the Discord slash command all read that declaration. Its one-line description lives in
bot/locales/*.toml under [commands].
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bot.events import Incoming, Sink
from bot.files import private_dir
from bot.i18n import t
from bot.policy import detail_for
from engines.base import Capability, Engine, EngineUnavailable

if TYPE_CHECKING:
    from bot.adapters import Adapters
    from bot.services import Services
    from bot.store import Chat, Store, User
    from engines.registry import Engines

T = TypeVar("T")


@dataclass
class CommandCall:
    """One call of a command: who asked where (`incoming`, `chat`, `user`), its `name` and
    `args`, the `sink` its answer goes to, and the bot's services."""

    services: Services
    incoming: Incoming
    chat: Chat
    user: User
    name: str
    args: str
    sink: Sink

    @property
    def lang(self) -> str:
        return self.services.lang(self.chat)

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def engines(self) -> Engines:
        return self.services.engines

    @property
    def adapters(self) -> Adapters:
        return self.services.adapters

    @property
    def engine_name(self) -> str:
        return self.services.engine_name(self.chat)

    async def ask_engine(self, capability: Capability, unsupported: str,
                         question: Callable[[Engine], Awaitable[T]]) -> tuple[Engine, T] | str:
        """(the chat's engine, its answer to `question(engine)`), or the text that says why
        there is none: the engine is unavailable, or lacks `capability` (`unsupported`)."""
        try:
            engine = await self.engines.get(self.engine_name)
            if not engine.can(capability):
                return self.t(unsupported, engine=self.engine_name)
            return engine, await question(engine)
        except EngineUnavailable as exc:  # also from question: a server without logprobs
            return self.t("engine_unavailable", engine=self.engine_name,
                          reason=self.detail(exc))

    @property
    def chat_key(self) -> str:
        """The chat as engines know it (Conversation.chat_key)."""
        return f"{self.incoming.platform}:{self.incoming.chat_id}"

    @property
    def uploads(self) -> bool:
        """Whether the platform takes a file into the chat (Telegram, Discord: not the console,
        which could only show a path)."""
        return self.sink.uploads

    @contextlib.asynccontextmanager
    async def upload(self, kind: str, name: str, caption: str) -> AsyncIterator[Path]:
        """A path to write a file to, in a private folder under data/<kind>/; the file is sent
        when the block ends and the folder goes right after (it may hold people's words)."""
        folder = private_dir(self.services.config.data_dir / kind / uuid.uuid4().hex)
        try:
            yield folder / name
            await self.sink.send_file(folder / name, caption)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def detail(self, text: object) -> str:
        """An error's details for the bot's admins only (policy.detail_for)."""
        return detail_for(self.incoming, self.services.config.bot, self.lang, text)

    def t(self, key: str, /, **values: Any) -> str:
        return t(self.lang, key, **values)


Handler = Callable[[CommandCall], Awaitable[str]]
Choices = Sequence[str] | Callable[["Services"], Sequence[str]]


@dataclass(frozen=True)
class Argument:
    """A command's one argument: `name` is the Discord option's name and, in capitals, the
    placeholder in /help; `choices` are fixed values or the bot's current ones (engine names);
    `hint` overrides the placeholder ("ID|base|off")."""

    name: str
    required: bool = True
    choices: Choices = ()
    hint: str = ""

    def values(self, services: Services) -> list[str]:
        return list(self.choices(services) if callable(self.choices) else self.choices)

    @property
    def placeholder(self) -> str:
        if self.hint:
            shown = self.hint
        elif self.choices and not callable(self.choices):
            shown = "|".join(self.choices)
        else:
            shown = self.name.upper()
        return shown if self.required else f"[{shown}]"


@dataclass(frozen=True)
class Command:
    name: str
    run: Handler
    scope: str = "anyone"  # "anyone", "chat_admin" (in groups) or "admin" (bot admins)
    long: bool = False  # runs for minutes: the router does not hold the chat's lock for it
    argument: Argument | None = None
    whole: bool = False  # its answer is data (/mydata): never shortened, the sink splits it
    # It acts on the bot (a job, the active adapter, a pin): delivered again after a restart
    # it is not run again, since it may have been carried out already (router._not_replayed).
    acts: bool = False

    @property
    def usage(self) -> str:
        """"/engine NAME", "/adapters [ID]", "/help"."""
        return f"/{self.name} {self.argument.placeholder}" if self.argument else f"/{self.name}"


COMMANDS: dict[str, Command] = {}


def command(name: str, scope: str = "anyone", long: bool = False,
            argument: Argument | None = None, whole: bool = False,
            acts: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, fn, scope, long, argument, whole, acts)
        return fn

    return register


def parse(text: str) -> tuple[str, str] | None:
    """("engine", "eliza") for "/engine eliza"; None for text that is not a command."""
    if not text.startswith("/") or len(text) < 2 or text[1].isspace():
        return None
    head, _, args = text[1:].partition(" ")
    head, _, rest = head.partition("\n")
    return head.lower(), f"{rest} {args}".strip()


def describe(name: str, lang: str) -> str:
    """What the command does, in one line (no usage)."""
    return t(lang, f"commands.{name}")


def summary(name: str, lang: str) -> str:
    """The description with the usage where there is an argument: a platform's menu text."""
    cmd = COMMANDS[name]
    return f"{describe(name, lang)}: {cmd.usage}" if cmd.argument else describe(name, lang)


# The command modules register themselves on import.
from bot.commands import chat, feedback, lesson, privacy, stats, training  # noqa: E402

__all__ = ["COMMANDS", "Argument", "Command", "CommandCall", "chat", "command", "describe",
           "feedback", "lesson", "parse", "privacy", "stats", "summary", "training"]
