"""Platform-neutral events: what frontends hand to the router, and how it answers them.

Frontends translate platform payloads into these types and nothing else; the router and the
engines never see a platform object. What engines are handed (Conversation, Turn) is the
engines' own contract, in engines/base.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    """One message (or slash command, as text: "/engine eliza") from a person."""

    platform: str
    chat_id: str
    user_id: str
    text: str
    user_name: str = ""
    message_id: str = ""
    reply_to: str = ""  # platform id of the message this one answers, if any
    is_admin: bool = False  # an admin of this chat (frontend's knowledge) or of the bot
    is_group: bool = False
    chat_title: str = ""
    redelivered: bool = False  # kept before a restart: it may have been stored already
    server_id: str = ""  # the Discord server (guild) it was written in; "" elsewhere
    roles: tuple[str, ...] = ()  # the author's Discord role ids there ([access] reads them)


@dataclass(frozen=True)
class Reaction:
    """An emoji put on (added=True) or taken off a message."""

    platform: str
    chat_id: str
    user_id: str
    message_id: str
    emoji: str
    added: bool = True
    user_name: str = ""
    is_group: bool = True  # False in a private chat ([access] private_chats)
    server_id: str = ""  # as in Incoming
    roles: tuple[str, ...] = ()  # as in Incoming (Discord sends none when one is taken off)


class Sink(Protocol):
    """How the router sends one reply back: a frontend's own, throttled to its platform.

    A sink subclasses this class by name, so that what its platform lacks falls back to the
    defaults below: the router and the commands use every member here, and nothing else."""

    uploads: bool = False  # True where send_file puts the file itself in the chat (not a path)

    async def update(self, text: str) -> None:
        """The reply so far (the whole text, not a delta); may be shown or skipped."""

    async def finish(self, text: str) -> list[str]:
        """The final text, always delivered; returns the platform ids of the messages sent."""

    @property
    def ids(self) -> list[str]:
        """The platform ids of the messages that show (part of) this reply so far."""
        return []

    def another(self) -> Sink | None:
        """A sink for one more message in this chat, after this one (a /compare sends one per
        engine, a notice follows an answer); None where a reply is one message only."""
        return None

    async def send_file(self, path: Path, caption: str) -> None:
        """A file (a loss curve, say) for the chat; where the platform can show none, nothing is
        sent (the reply's text says what the file held)."""
        return None


async def deliver(sink: Sink, text: str) -> list[str]:
    """Send a reply's final text. A platform failure is logged, and the ids of the messages
    that show part of it come back all the same: the reply is stored with them, so a vote on
    them still counts."""
    try:
        return list(await sink.finish(text))
    except Exception:
        log.exception("could not deliver a reply")
        return sink.ids
