"""Platform-neutral slash commands: the same words in every frontend.

A command is an async function of a CommandContext that returns the text to answer with.
Its one-line description lives in bot/locales/*.toml under [commands].
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.events import Incoming, Sink
from bot.i18n import t

if TYPE_CHECKING:
    from bot.router import Router
    from bot.store import Chat, User


@dataclass
class CommandContext:
    router: Router
    incoming: Incoming
    chat: Chat
    user: User
    name: str
    args: str
    sink: Sink

    @property
    def lang(self) -> str:
        return self.router.lang(self.chat)

    @property
    def store(self) -> Any:
        return self.router.store

    @property
    def engines(self) -> Any:
        return self.router.engines

    @property
    def engine_name(self) -> str:
        return self.router.engine_name(self.chat)

    def t(self, key: str, /, **values: Any) -> str:
        return t(self.lang, key, **values)


Handler = Callable[[CommandContext], Awaitable[str]]


@dataclass(frozen=True)
class Command:
    name: str
    run: Handler
    scope: str = "anyone"  # "anyone", "chat_admin" (in groups) or "admin" (bot admins)
    long: bool = False  # runs for minutes: the router does not hold the chat's lock for it


COMMANDS: dict[str, Command] = {}


def command(name: str, scope: str = "anyone", long: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, fn, scope, long)
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
    return t(lang, f"commands.{name}")


# The command modules register themselves on import.
from bot.commands import chat, feedback, privacy, training  # noqa: E402

__all__ = ["COMMANDS", "Command", "CommandContext", "chat", "command", "feedback", "parse",
           "privacy", "training"]
