"""Frontends: thin translators between a platform and the router.

A frontend turns platform events into `Incoming` / `Reaction`, hands them to the router with a
`Sink` of its own, and knows nothing of engines or SQL. A new frontend is one module and one
line in FRONTENDS; its `Options` dataclass is its table in config.toml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from bot.router import Router

# platform -> "module:Class"; imported only when that frontend is configured or started.
FRONTENDS: dict[str, str] = {
    "console": "bot.frontends.console:ConsoleFrontend",
    "telegram": "bot.frontends.telegram:TelegramFrontend",
    "discord": "bot.frontends.discord:DiscordFrontend",
}


class Frontend(Protocol):
    """A platform's frontend. A frontend subclasses this class by name, so that what it has no
    need of falls back to the defaults below; the app uses every member here, and nothing else."""

    platform: ClassVar[str]
    Options: ClassVar[type]

    def __init__(self, options: Any, config: Any, token: str) -> None: ...

    async def start(self, router: Router) -> None:
        """Connect and begin handing events to the router; return once running."""

    async def wait(self) -> None:
        """Return when the frontend has ended by itself (the console at end of input)."""

    async def stop_intake(self) -> None:
        """Take no new events (the router drains what it has before `stop`); by default
        nothing: `stop` does it."""
        return None

    async def stop(self) -> None:
        """Disconnect; no new events reach the router after this returns."""
