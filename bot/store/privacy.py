"""What a person can see and erase of their data (/mydata, /forget), and retention."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.store.connection import Connection
from bot.store.people import User


class Privacy(Connection):
    async def user_data(self, user: User) -> dict[str, Any]:
        """Everything stored about a user, for /mydata."""
        messages = await self._all(
            "SELECT m.id, c.platform_chat_id, m.role, m.text, m.created_at FROM messages m"
            " JOIN chats c ON c.id = m.chat_id WHERE m.user_id = ? ORDER BY m.id",
            (user.id,),
        )
        votes = await self._all(
            "SELECT message_id, value, source, created_at FROM feedback WHERE user_id = ?"
            " ORDER BY message_id",
            (user.id,),
        )
        return {
            "user": {"platform": user.platform, "id": user.platform_user_id,
                     "name": user.name, "opted_out": user.opted_out},
            "messages": [dict(zip(("id", "chat", "role", "text"), m[:4], strict=True))
                         | {"time": _iso(m[4])} for m in messages],
            "votes": [dict(zip(("reply", "value", "source"), v[:3], strict=True))
                      | {"time": _iso(v[3])} for v in votes],
        }

    async def forget_user(self, user: User) -> int:
        """Delete the user's messages and votes; replies to them keep only their metadata.

        Engine state of the chats they wrote in is dropped too (ELIZA's memory holds their
        words). Returns the number of messages deleted.
        """
        async with self._write():
            await self.db.execute(
                "DELETE FROM engine_state WHERE chat_id IN"
                " (SELECT DISTINCT chat_id FROM messages WHERE user_id = ?)",
                (user.id,),
            )
            await self.db.execute("DELETE FROM feedback WHERE user_id = ?", (user.id,))
            await self.db.execute(
                "UPDATE messages SET text = NULL, trace = NULL WHERE user_id = ? AND role = 'bot'",
                (user.id,),
            )
            cursor = await self.db.execute(
                "DELETE FROM messages WHERE user_id = ? AND role = 'user'", (user.id,)
            )
            await self.db.execute("UPDATE users SET name = NULL WHERE id = ?", (user.id,))
        user.name = ""
        async with self._lock:  # not inside another coroutine's open transaction
            await self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # old pages out of the WAL
        return cursor.rowcount

    async def stored_texts(self) -> list[tuple[str, str]]:
        """(lang, text) of user messages from people who have not opted out, oldest first."""
        return await self._all(
            "SELECT COALESCE(c.lang, ''), m.text FROM messages m"
            " JOIN chats c ON c.id = m.chat_id JOIN users u ON u.id = m.user_id"
            " WHERE m.role = 'user' AND m.text IS NOT NULL AND u.opted_out = 0 ORDER BY m.id"
        )

    async def prune(self, older_than: float) -> int:
        """Delete messages older than a unix time (the retention limit)."""
        cursor = await self._exec("DELETE FROM messages WHERE created_at < ?", (older_than,))
        return cursor.rowcount


def _iso(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).isoformat(timespec="seconds")
