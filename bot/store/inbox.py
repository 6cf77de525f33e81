"""The durable inbox: what a platform delivered, written before the platform is told it was
received, and marked done once handled, so that a bot killed in between handles it after its
restart, and a delivery that comes twice is handled once."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from bot.store.connection import Connection


@dataclass(frozen=True)
class Received:
    key: str  # the platform's id of the delivery (Telegram's update_id)
    payload: dict[str, Any]
    received_at: float
    reply_ids: list[str]  # platform ids of what was sent in answer before a restart


class Inbox(Connection):
    async def receive(self, platform: str, key: str, payload: dict[str, Any]) -> bool:
        """Keep a delivery; False if it was kept before (a redelivery)."""
        cursor = await self._exec(
            "INSERT OR IGNORE INTO inbox (platform, key, payload, received_at)"
            " VALUES (?, ?, ?, ?)", (platform, key, json.dumps(payload), time.time()))
        return cursor.rowcount == 1

    async def unhandled(self, platform: str) -> list[Received]:
        """Deliveries kept and not yet handled, oldest first."""
        rows = await self._all(
            "SELECT key, payload, received_at, reply_ids FROM inbox"
            " WHERE platform = ? AND done_at IS NULL ORDER BY received_at, rowid", (platform,))
        return [Received(key, json.loads(payload), at, json.loads(ids or "[]"))
                for key, payload, at, ids in rows]

    async def replying(self, platform: str, key: str, reply_ids: list[str]) -> None:
        """The platform ids of the answer so far, kept as soon as they are known: after a
        restart the answer edits these messages instead of sending new ones."""
        # Not behind the store's lock: until this lands, a bot killed now would send the answer
        # again after its restart, so it goes straight to the connection's queue. A single
        # statement, it commits on its own or with the transaction it lands in.
        await self.db.execute("UPDATE inbox SET reply_ids = ? WHERE platform = ? AND key = ?",
                              (json.dumps(reply_ids), platform, key))

    async def handled(self, platform: str, key: str) -> None:
        """Done: the text leaves the inbox (it is in the messages table if it may be kept)."""
        await self._exec("UPDATE inbox SET done_at = ?, payload = '{}' WHERE platform = ?"
                         " AND key = ?", (time.time(), platform, key))

    async def last_kept(self, platform: str) -> dict[str, int | None]:
        """Per chat of `platform` the bot knows, the highest message id kept in its inbox
        (None where none is kept any more), for a platform whose keys are "chat:message" with
        ids that grow with time (Discord's snowflakes): where a catch-up starts reading."""
        rows = await self._all(
            "SELECT platform_chat_id, NULL FROM chats WHERE platform = ? UNION ALL"
            " SELECT substr(key, 1, instr(key, ':') - 1),"
            " MAX(CAST(substr(key, instr(key, ':') + 1) AS INTEGER))"
            " FROM inbox WHERE platform = ? AND instr(key, ':') > 0"
            " GROUP BY substr(key, 1, instr(key, ':') - 1)", (platform, platform))
        last: dict[str, int | None] = {}
        for chat_id, message_id in rows:
            last[chat_id] = message_id if message_id is not None else last.get(chat_id)
        return last

    async def forget_handled(self, older_than: float) -> int:
        cursor = await self._exec("DELETE FROM inbox WHERE done_at < ?", (older_than,))
        return cursor.rowcount
