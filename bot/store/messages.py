"""The conversation log: messages, the history an engine sees, and replies."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from bot.store.connection import Connection, row_id
from bot.store.people import Chat, User
from engines.base import Role, Turn

INSERT_MESSAGE = (
    "INSERT INTO messages (chat_id, user_id, role, text, reply_to, engine, engine_version,"
    " trace, created_at, platform_msg_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_REF = "INSERT OR REPLACE INTO message_refs VALUES (?, ?, ?)"
# The last turns since /reset (args: chat id, history_from, how many), newest first. Texts not
# stored are left out, and so is everything by or to someone who has opted out since (engines
# would quote it).
HISTORY = (
    "SELECT m.role, m.text, COALESCE(u.name, '') FROM messages m"
    " LEFT JOIN users u ON u.id = m.user_id"
    " WHERE m.chat_id = ? AND m.id > ? AND m.text IS NOT NULL"
    " AND NOT COALESCE(u.opted_out, 0)"
    " ORDER BY m.id DESC LIMIT ?")


def turns(rows: list[tuple[str, str, str]]) -> list[Turn]:
    """HISTORY's rows as turns, oldest first."""
    return [Turn(cast(Role, role), text, name if role == "user" else "")
            for role, text, name in rows[::-1]]


@dataclass(frozen=True)
class Reply:
    id: int
    engine: str
    engine_version: str
    trace: dict[str, Any]


class Messages(Connection):
    async def add_message(
        self,
        chat: Chat,
        user: User | None,
        role: str,
        text: str | None,
        *,
        platform_ids: Sequence[str] = (),
        reply_to: int | None = None,
        engine: str | None = None,
        engine_version: str | None = None,
        trace: dict[str, Any] | None = None,
        platform_msg_id: str | None = None,
    ) -> int:
        """A message, or a reply (with the `platform_ids` it was sent as). `platform_msg_id`:
        the platform's id of a person's message, to find it again if it is delivered twice."""
        row = (chat.id, user.id if user else None, role, text, reply_to, engine,
               engine_version, json.dumps(trace) if trace else None, time.time(),
               platform_msg_id or None)
        refs = [pid for pid in platform_ids if pid]

        def insert(conn: sqlite3.Connection) -> int:
            message_id = row_id(conn.execute(INSERT_MESSAGE, row).lastrowid)
            conn.executemany(INSERT_REF, [(chat.id, pid, message_id) for pid in refs])
            return message_id

        async with self._invalidating(chat.id, states=False):  # a turn the cache lacks
            if not refs:
                async with self._lock:
                    return await self._in_thread(insert)
            return await self._write_in_one_trip(insert)

    async def message_for(self, chat: Chat, platform_msg_id: str) -> int | None:
        """The stored id of a person's message, by the platform's id of it."""
        row = await self._one("SELECT id FROM messages WHERE chat_id = ? AND platform_msg_id = ?"
                              " AND role = 'user'", (chat.id, platform_msg_id))
        return row[0] if row else None

    async def answered(self, message_id: int) -> bool:
        """Whether a reply to this message is stored (it is stored once delivered)."""
        row = await self._one("SELECT 1 FROM messages WHERE reply_to = ? AND role = 'bot'",
                              (message_id,))
        return row is not None

    async def history(self, chat: Chat, limit: int) -> list[Turn]:
        """The last `limit` turns since /reset, oldest first (see HISTORY)."""
        return turns(await self._all(HISTORY, (chat.id, chat.history_from, limit)))

    async def last_reply(self, chat: Chat) -> Reply | None:
        row = await self._one(
            "SELECT id, engine, engine_version, trace FROM messages"
            " WHERE chat_id = ? AND role = 'bot' ORDER BY id DESC LIMIT 1",
            (chat.id,),
        )
        if row is None:
            return None
        return Reply(row[0], row[1] or "", row[2] or "", json.loads(row[3] or "{}"))

    async def exchange_texts(self, reply_id: int) -> tuple[str, str] | None:
        """(the message a reply answers, the reply) while both texts are stored, else None."""
        row = await self._one(
            "SELECT q.text, r.text FROM messages r JOIN messages q ON q.id = r.reply_to"
            " WHERE r.id = ? AND q.text IS NOT NULL AND r.text IS NOT NULL",
            (reply_id,),
        )
        return (row[0], row[1]) if row else None

    async def reply_for(self, chat: Chat, platform_msg_id: str) -> int | None:
        """The id of the bot's reply that was sent as this platform message, if any."""
        row = await self._one(
            "SELECT m.id FROM message_refs r JOIN messages m ON m.id = r.message_id"
            " WHERE r.chat_id = ? AND r.platform_msg_id = ? AND m.role = 'bot'",
            (chat.id, platform_msg_id),
        )
        return row[0] if row else None
