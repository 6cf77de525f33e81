"""The conversation log: messages, the history an engine sees, replies, and engine state."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from bot.store.connection import Connection
from bot.store.people import Chat, User
from engines.base import Turn


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
        platform_ids: list[str] = (),
        reply_to: int | None = None,
        engine: str | None = None,
        engine_version: str | None = None,
        trace: dict[str, Any] | None = None,
        platform_msg_id: str | None = None,
    ) -> int:
        """A message, or a reply (with the `platform_ids` it was sent as). `platform_msg_id`:
        the platform's id of a person's message, to find it again if it is delivered twice."""
        insert = (
            "INSERT INTO messages (chat_id, user_id, role, text, reply_to, engine,"
            " engine_version, trace, created_at, platform_msg_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (chat.id, user.id if user else None, role, text, reply_to, engine,
             engine_version, json.dumps(trace) if trace else None, time.time(),
             platform_msg_id or None),
        )
        refs = [pid for pid in platform_ids if pid]
        if not refs:
            async with self._lock:
                return (await self._one(*insert))[0]
        async with self._write():
            row = await self._one(*insert)
            await self.db.executemany(
                "INSERT OR REPLACE INTO message_refs VALUES (?, ?, ?)",
                [(chat.id, pid, row[0]) for pid in refs],
            )
        return row[0]

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
        """The last `limit` turns since /reset, oldest first; texts not stored are left out, and
        so is everything by or to someone who has opted out since (engines would quote it)."""
        rows = await self._all(
            "SELECT m.role, m.text, COALESCE(u.name, '') FROM messages m"
            " LEFT JOIN users u ON u.id = m.user_id"
            " WHERE m.chat_id = ? AND m.id > ? AND m.text IS NOT NULL"
            " AND NOT COALESCE(u.opted_out, 0)"
            " ORDER BY m.id DESC LIMIT ?",
            (chat.id, chat.history_from, limit),
        )
        return [Turn(role, text, name if role == "user" else "") for role, text, name in rows[::-1]]

    async def last_reply(self, chat: Chat) -> Reply | None:
        row = await self._one(
            "SELECT id, engine, engine_version, trace FROM messages"
            " WHERE chat_id = ? AND role = 'bot' ORDER BY id DESC LIMIT 1",
            (chat.id,),
        )
        if row is None:
            return None
        return Reply(row[0], row[1] or "", row[2] or "", json.loads(row[3] or "{}"))

    async def reply_for(self, chat: Chat, platform_msg_id: str) -> int | None:
        """The id of the bot's reply that was sent as this platform message, if any."""
        row = await self._one(
            "SELECT m.id FROM message_refs r JOIN messages m ON m.id = r.message_id"
            " WHERE r.chat_id = ? AND r.platform_msg_id = ? AND m.role = 'bot'",
            (chat.id, platform_msg_id),
        )
        return row[0] if row else None

    # engine state ---------------------------------------------------------------------------

    async def engine_state(self, chat: Chat, engine: str) -> dict[str, Any]:
        row = await self._one(
            "SELECT state FROM engine_state WHERE chat_id = ? AND engine = ?", (chat.id, engine)
        )
        return json.loads(row[0]) if row else {}

    async def save_engine_state(self, chat: Chat, engine: str, state: dict[str, Any]) -> None:
        await self._exec(
            "INSERT OR REPLACE INTO engine_state VALUES (?, ?, ?)",
            (chat.id, engine, json.dumps(state, ensure_ascii=False)),
        )
