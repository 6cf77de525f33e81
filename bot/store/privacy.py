"""What a person can see and erase of their data (/mydata, /forget), and retention."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.quotes import Gram, own_grams, public_grams, quotes
from bot.store.connection import Connection
from bot.store.people import Chat, User

log = logging.getLogger(__name__)
WIPE_RETRY_SECONDS = 0.5

# A reply is "about" a person when it answers them, or when an engine made it from its memory
# of a chat they wrote in (ELIZA recalling one person's words to another).
_ABOUT = ("(m.user_id = ?1 OR (m.chat_id IN (SELECT chat_id FROM participants WHERE user_id = ?1)"
          " AND json_extract(m.trace, '$.memory') = 1))")


@dataclass
class Forgotten:
    """What /forget deleted: the person's messages and the replies about them."""

    messages: int = 0
    message_ids: list[int] = field(default_factory=list)  # theirs and the replies to them
    chat_ids: list[int] = field(default_factory=list)  # the chats they wrote in
    quoting: list[int] = field(default_factory=list)  # others' replies that quoted them
    wal_wiped: bool = True  # False: a reader holds old pages; they go as soon as it ends


class Privacy(Connection):
    _chats: dict[tuple[str, str], Chat]  # People's cache of chats (the Store holds both)

    _wiping: asyncio.Task | None = None

    async def user_data(self, user: User) -> dict[str, Any]:
        """Everything stored about a user, for /mydata: their messages, the replies to them
        with their explanations, their votes, and the engine memory of chats where they are
        the only writer (a group's memory holds other people's words too: named, not shown)."""
        messages = await self._all(
            "SELECT m.id, c.platform_chat_id, m.role, m.text, m.engine, m.engine_version,"
            " m.trace, m.created_at FROM messages m JOIN chats c ON c.id = m.chat_id"
            " WHERE m.user_id = ? ORDER BY m.id", (user.id,))
        votes = await self._all(
            "SELECT message_id, value, source, created_at FROM feedback WHERE user_id = ?"
            " ORDER BY message_id", (user.id,))
        return {
            "user": {"platform": user.platform, "id": user.platform_user_id,
                     "name": user.name, "opted_out": user.opted_out},
            "messages": [_message(m) for m in messages],
            "votes": [dict(zip(("reply", "value", "source"), v[:3], strict=True))
                      | {"time": _iso(v[3])} for v in votes],
            "engine_memory": await self._memories(user),
        }

    async def _memories(self, user: User) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT c.platform_chat_id, e.engine, e.state,"
            " (SELECT COUNT(*) FROM participants o WHERE o.chat_id = p.chat_id)"
            " FROM participants p JOIN chats c ON c.id = p.chat_id"
            " JOIN engine_state e ON e.chat_id = p.chat_id WHERE p.user_id = ?", (user.id,))
        return [{"chat": chat, "engine": engine,
                 "state": json.loads(state) if writers == 1 else "shared with others in the "
                 "chat: not shown; /forget deletes it"} for chat, engine, state, writers in rows]

    async def forget_user(self, user: User) -> Forgotten:
        """Delete the user's messages and votes; the replies about them (see _ABOUT) and the
        replies of any engine that quote them (the transformer and remote engines answer from
        a history that holds everyone's words) keep only their metadata, and the engine state
        of every chat they wrote in is dropped (ELIZA's memory holds their words), then the
        WAL is wiped of the old pages."""
        public = await asyncio.to_thread(public_grams)  # read once per process, off the loop
        async with self._invalidating(), self._write():
            chats = [r[0] for r in await self._all(
                "SELECT chat_id FROM participants WHERE user_id = ?", (user.id,))]
            quoting = await self._quoting(user, public)
            ids = [r[0] for r in await self._all(
                f"SELECT m.id FROM messages m WHERE {_ABOUT}", (user.id,))]
            await self.db.execute("DELETE FROM engine_state WHERE chat_id IN"
                                  " (SELECT chat_id FROM participants WHERE user_id = ?)",
                                  (user.id,))
            await self.db.execute("DELETE FROM feedback WHERE user_id = ?", (user.id,))
            await self.db.execute(f"UPDATE messages AS m SET text = NULL, trace = NULL"
                                  f" WHERE m.role = 'bot' AND {_ABOUT}", (user.id,))
            await self.db.executemany("UPDATE messages SET text = NULL, trace = NULL"
                                      " WHERE id = ?", [(i,) for i in quoting])
            cursor = await self.db.execute(
                "DELETE FROM messages WHERE user_id = ? AND role = 'user'", (user.id,))
            await self.db.execute("DELETE FROM participants WHERE user_id = ?", (user.id,))
            await self.db.execute("UPDATE users SET name = NULL WHERE id = ?", (user.id,))
        user.name = ""
        return Forgotten(cursor.rowcount, sorted({*ids, *quoting}), chats, quoting,
                         await self._wipe_or_retry())

    async def _quoting(self, user: User, public: frozenset[Gram]) -> list[int]:
        """Replies to others, in the chats the user wrote in and after they first wrote there,
        that hold a word or run of their words the packaged corpora do not (bot/quotes.py)."""
        theirs = await self._all("SELECT chat_id, MIN(id), json_group_array(text) FROM messages"
                                 " WHERE user_id = ? AND role = 'user' AND text IS NOT NULL"
                                 " GROUP BY chat_id", (user.id,))
        found = []
        for chat_id, first, texts in theirs:
            own = own_grams(json.loads(texts), public)
            replies = await self._all(
                "SELECT id, text FROM messages WHERE chat_id = ? AND role = 'bot' AND id > ?"
                " AND text IS NOT NULL AND (user_id IS NULL OR user_id != ?)",
                (chat_id, first, user.id))
            found += [reply_id for reply_id, text in replies if quotes(text, own)]
        return found

    async def _wipe_or_retry(self) -> bool:
        if await self.wipe_wal():
            return True
        if self._wiping is None or self._wiping.done():
            self._wiping = asyncio.create_task(self._wipe_until_done(), name="wipe-wal")
        return False

    async def _wipe_until_done(self) -> None:
        while not await self.wipe_wal():
            await asyncio.sleep(WIPE_RETRY_SECONDS)
        log.info("the WAL is wiped: no old copy of forgotten text is left in it")

    async def wal_wiped(self) -> None:
        """Wait until a wipe that had to wait for a reader is done."""
        if self._wiping is not None:
            await self._wiping

    async def close(self) -> None:
        if self._wiping is not None and not self._wiping.done():
            self._wiping.cancel()
        await super().close()

    async def stored_texts(self, where: str = "", args: tuple = ()) -> list[tuple[str, ...]]:
        """(lang, text, person, chat) of the user messages of people who have not opted out,
        oldest first: what engines learn from. `where` narrows it (an SQL condition on m, u)."""
        return await self._all(
            "SELECT COALESCE(c.lang, ''), m.text, u.platform || ':' || u.platform_user_id,"
            " c.platform || ':' || c.platform_chat_id FROM messages m"
            " JOIN chats c ON c.id = m.chat_id JOIN users u ON u.id = m.user_id"
            " WHERE m.role = 'user' AND m.text IS NOT NULL AND u.opted_out = 0"
            f"{' AND ' + where if where else ''} ORDER BY m.id", args)

    async def texts_of(self, user: User) -> list[tuple[str, ...]]:
        """stored_texts of one person: what /forget and /optout take back from engines."""
        return await self.stored_texts("m.user_id = ?", (user.id,))

    async def texts_older_than(self, older_than: float) -> list[tuple[str, ...]]:
        """stored_texts that retention (`prune`) is about to delete."""
        return await self.stored_texts("m.created_at < ?", (older_than,))

    async def people_texts(self) -> list[tuple[int, str]]:
        """(person, text) of every stored message of people who have not opted out: whom the
        fine-tuning export counts, to learn only what k distinct people wrote."""
        return await self._all(
            "SELECT m.user_id, m.text FROM messages m JOIN users u ON u.id = m.user_id"
            " WHERE m.role = 'user' AND m.text IS NOT NULL AND u.opted_out = 0")

    async def prune(self, older_than: float) -> int:
        """Delete messages older than a unix time (the retention limit), and the engine state
        of chats that have no message left (their memories came from the deleted ones).

        SQLite gives a new message the highest id left plus one, so once the newest messages
        are gone, ids are handed out again: a chat's /reset mark (history_from) above the
        highest id left would hide its new turns. Such marks come down to that id."""
        async with self._invalidating(), self._write():
            cursor = await self.db.execute("DELETE FROM messages WHERE created_at < ?",
                                           (older_than,))
            await self.db.execute("DELETE FROM engine_state WHERE chat_id NOT IN"
                                  " (SELECT DISTINCT chat_id FROM messages)")
            top = (await self._one("SELECT COALESCE(MAX(id), 0) FROM messages"))[0]
            await self.db.execute("UPDATE chats SET history_from = ? WHERE history_from > ?",
                                  (top, top))
        for chat in self._chats.values():  # People's cache of chats, this same store's
            chat.history_from = min(chat.history_from, top)
        return cursor.rowcount


def _message(row: tuple) -> dict[str, Any]:
    id_, chat, role, text, engine, version, trace, created = row
    shown = {"id": id_, "chat": chat, "role": role, "text": text, "time": _iso(created)}
    if role == "bot":
        shown |= {"engine": engine, "version": version, "trace": json.loads(trace or "{}")}
    return shown


def _iso(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).isoformat(timespec="seconds")
