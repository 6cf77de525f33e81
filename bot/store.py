"""aiosqlite: the only module that writes SQL. Migrations are ordered functions.

One connection per process, in WAL mode with a busy timeout, so the bot and a fine-tuning job
(another process) can share the file. Writes that span several statements run in
`BEGIN IMMEDIATE` transactions under an asyncio lock: one connection is shared by every chat's
coroutine, and their statements must not interleave inside each other's transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from engines.base import Turn

Migration = Callable[[aiosqlite.Connection], Awaitable[None]]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register a schema step; steps run once each, in the order they are defined."""
    MIGRATIONS.append(fn)
    return fn


@migration
async def m001_initial(db: aiosqlite.Connection) -> None:
    await _script(
        db,
        """
        CREATE TABLE chats (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            platform_chat_id TEXT NOT NULL,
            title TEXT,
            engine TEXT,
            lang TEXT,
            history_from INTEGER NOT NULL DEFAULT 0,  -- /reset: turns before this id are unseen
            created_at REAL NOT NULL,
            UNIQUE (platform, platform_chat_id)
        );
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            platform_user_id TEXT NOT NULL,
            name TEXT,
            opted_out INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            UNIQUE (platform, platform_user_id)
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            user_id INTEGER REFERENCES users(id),  -- author, or for a reply: whom it answers
            role TEXT NOT NULL CHECK (role IN ('user', 'bot')),
            text TEXT,                              -- NULL: opted out or forgotten
            reply_to INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            engine TEXT,
            engine_version TEXT,
            trace TEXT,                             -- JSON: the engine's explanation, for /why
            created_at REAL NOT NULL
        );
        CREATE INDEX messages_by_chat ON messages (chat_id, id);
        CREATE INDEX messages_by_user ON messages (user_id);
        CREATE TABLE message_refs (                 -- platform message ids, for reactions
            chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            platform_msg_id TEXT NOT NULL,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            PRIMARY KEY (chat_id, platform_msg_id)
        );
        CREATE INDEX message_refs_by_message ON message_refs (message_id);
        CREATE TABLE engine_state (
            chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            engine TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (chat_id, engine)
        );
        CREATE TABLE feedback (
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            value INTEGER NOT NULL CHECK (value IN (-1, 1)),
            source TEXT NOT NULL,                   -- the emoji or command that voted
            created_at REAL NOT NULL,
            PRIMARY KEY (message_id, user_id)
        );
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
            requested_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
            pid INTEGER,
            detail TEXT,
            adapter_id TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        );
        CREATE TABLE adapters (
            id TEXT PRIMARY KEY,
            base_model TEXT NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'rejected', 'retired')),
            metrics TEXT,
            job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
            created_at REAL NOT NULL,
            promoted_at REAL
        );
        """
    )


@migration
async def m002_chat_adapter(db: aiosqlite.Connection) -> None:
    """A chat's pinned adapter (/adapter) moves out of the transformer's engine state, which
    /reset clears, into the chat itself."""
    await _script(
        db,
        """
        ALTER TABLE chats ADD COLUMN adapter TEXT;  -- NULL: the active one; 'base': none
        UPDATE chats SET adapter = (SELECT json_extract(e.state, '$.adapter') FROM engine_state e
                                    WHERE e.chat_id = chats.id AND e.engine = 'transformer');
        UPDATE engine_state SET state = json_remove(state, '$.adapter')
            WHERE engine = 'transformer'
        """,
    )


async def _script(db: aiosqlite.Connection, sql: str) -> None:
    """Run statements one by one: executescript would commit the migration's transaction."""
    for statement in sql.split(";"):
        if statement.strip():
            await db.execute(statement)


@dataclass
class Chat:
    id: int
    platform: str
    platform_chat_id: str
    engine: str | None
    lang: str | None
    history_from: int
    adapter: str = ""  # the adapter this chat is pinned to ("" for the active one)


@dataclass
class User:
    id: int
    platform: str
    platform_user_id: str
    name: str
    opted_out: bool


@dataclass(frozen=True)
class Reply:
    id: int
    engine: str
    engine_version: str
    trace: dict[str, Any]


@dataclass(frozen=True)
class VotedReply:
    """A reply with the message it answers and its votes, for the fine-tuning export."""

    id: int
    prompt_id: int
    lang: str
    prompt: str
    text: str
    engine_version: str | None
    score: int  # the sum of the votes (+1 / -1, one per person)
    votes: int


@dataclass(frozen=True)
class Adapter:
    id: str
    base_model: str
    path: str
    status: str  # candidate, active, rejected or retired
    metrics: dict[str, Any]
    job_id: int | None = None
    promoted_at: float | None = None

    # The metrics' shape is the job's (finetune/run.py): {"evaluation": {"new": {...}, ...}}.
    @property
    def accuracy(self) -> float | None:
        """Held-out accuracy of the adapter's implicit reward, if it was judged."""
        value = self.metrics.get("evaluation", {}).get("new", {}).get("accuracy")
        return value if isinstance(value, int | float) else None

    @property
    def reason(self) -> str:
        """Why it was promoted or rejected, in one line."""
        return self.metrics.get("reason") or self.metrics.get("evaluation", {}).get("reason", "")


class Store:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self._lock = asyncio.Lock()
        self._chats: dict[tuple[str, str], Chat] = {}
        self._users: dict[tuple[str, str], User] = {}

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)  # autocommit; see _write
        for pragma in (
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "busy_timeout = 10000",
            "foreign_keys = ON",
            "secure_delete = ON",  # /forget must leave no old text in free pages
        ):
            await db.execute(f"PRAGMA {pragma}")
        store = cls(db, path)
        try:
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self.db.close()

    async def schema_version(self) -> int:
        return (await self._one("SELECT COALESCE(MAX(version), 0) FROM schema_version"))[0]

    async def _migrate(self) -> None:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        async with self._write():
            done = await self.schema_version()
            for version, step in enumerate(MIGRATIONS[done:], start=done + 1):
                await step(self.db)
                await self.db.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (version, step.__name__, time.time()),
                )

    async def _exec(self, sql: str, args: tuple = ()) -> aiosqlite.Cursor:
        """One write statement, committed on its own: one hop, and the file's write lock is held
        for that statement only, so another process's writer gets its turn. The lock keeps it
        out of another coroutine's open transaction."""
        async with self._lock:
            return await self.db.execute(sql, args)

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        """A transaction, for writes of several statements that must land together. IMMEDIATE
        takes the file's write lock first (waiting up to busy_timeout), so no statement inside
        can fail on a snapshot that another process made stale."""
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    # Each await on the connection is a hop to its thread and back (~0.1 ms), so every read is
    # one hop (execute_fetchall), never execute/fetch/close. That also matters for locking: a
    # SELECT left open across hops pins an old snapshot, and a write started beside it fails
    # at once ("database is locked") if another process committed since, busy_timeout or not.
    async def _all(self, sql: str, args: tuple = ()) -> list[Any]:
        return list(await self.db.execute_fetchall(sql, args))

    async def _one(self, sql: str, args: tuple = ()) -> Any:
        rows = await self.db.execute_fetchall(sql, args)
        return rows[0] if rows else None

    # chats and users ---------------------------------------------------------------------

    # Two coroutines may miss the cache at once (right after a start); `setdefault` makes them
    # share one object, so that a change through one (/optout, /engine) is seen by both.
    async def chat(self, platform: str, platform_chat_id: str, title: str = "") -> Chat:
        """The chat, created on first sight."""
        key = (platform, platform_chat_id)
        if key not in self._chats:
            await self._exec(
                "INSERT INTO chats (platform, platform_chat_id, title, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (platform, platform_chat_id, title or None, time.time()),
            )
            return await self.find_chat(platform, platform_chat_id)
        return self._chats[key]

    async def find_chat(self, platform: str, platform_chat_id: str) -> Chat | None:
        """The chat if the bot has seen it, without creating it."""
        key = (platform, platform_chat_id)
        if key not in self._chats:
            row = await self._one(
                "SELECT id, engine, lang, history_from, COALESCE(adapter, '') FROM chats"
                " WHERE platform = ? AND platform_chat_id = ?",
                key,
            )
            if row is None:
                return None
            self._chats.setdefault(key, Chat(row[0], *key, *row[1:]))
        return self._chats[key]

    async def user(self, platform: str, platform_user_id: str, name: str = "") -> User:
        """The person, created on first sight."""
        key = (platform, platform_user_id)
        if key not in self._users:
            await self._exec(
                "INSERT INTO users (platform, platform_user_id, name, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (platform, platform_user_id, name or None, time.time()),
            )
            row = await self._one(
                "SELECT id, name, opted_out FROM users WHERE platform = ? AND platform_user_id = ?",
                key,
            )
            self._users.setdefault(key, User(row[0], *key, row[1] or "", bool(row[2])))
        return self._users[key]

    async def set_chat(self, chat: Chat, *, engine: str | None = None, lang: str | None = None,
                       adapter: str | None = None) -> None:
        """Change what is given; an `adapter` of "" unpins the chat."""
        if adapter is not None:
            await self._exec("UPDATE chats SET adapter = ? WHERE id = ?",
                             (adapter or None, chat.id))
            chat.adapter = adapter
        if engine is not None:
            await self._exec("UPDATE chats SET engine = ? WHERE id = ?", (engine, chat.id))
            chat.engine = engine
        if lang is not None:
            await self._exec("UPDATE chats SET lang = ? WHERE id = ?", (lang, chat.id))
            chat.lang = lang

    async def reset_chat(self, chat: Chat) -> None:
        """Forget the conversation context (engine state, history seen), not the log."""
        async with self._write():
            row = await self._one(
                "SELECT COALESCE(MAX(id), 0) FROM messages WHERE chat_id = ?", (chat.id,)
            )
            await self.db.execute("UPDATE chats SET history_from = ? WHERE id = ?",
                                  (row[0], chat.id))
            await self.db.execute("DELETE FROM engine_state WHERE chat_id = ?", (chat.id,))
        chat.history_from = row[0]

    async def set_opted_out(self, user: User, opted_out: bool) -> None:
        await self._exec("UPDATE users SET opted_out = ? WHERE id = ?", (int(opted_out), user.id))
        user.opted_out = opted_out

    # messages ------------------------------------------------------------------------------

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
    ) -> int:
        insert = (
            "INSERT INTO messages (chat_id, user_id, role, text, reply_to, engine,"
            " engine_version, trace, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (chat.id, user.id if user else None, role, text, reply_to, engine,
             engine_version, json.dumps(trace) if trace else None, time.time()),
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

    async def history(self, chat: Chat, limit: int) -> list[Turn]:
        """The last `limit` turns since /reset, oldest first; texts not stored are left out."""
        rows = await self._all(
            "SELECT m.role, m.text, COALESCE(u.name, '') FROM messages m"
            " LEFT JOIN users u ON u.id = m.user_id"
            " WHERE m.chat_id = ? AND m.id > ? AND m.text IS NOT NULL"
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

    # feedback -------------------------------------------------------------------------------

    async def vote(self, message_id: int, user: User, value: int, source: str) -> None:
        """One vote per user per reply: a new vote replaces the old one."""
        await self._exec(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id, user_id)"
            " DO UPDATE SET value = excluded.value, source = excluded.source,"
            " created_at = excluded.created_at",
            (message_id, user.id, value, source, time.time()),
        )

    async def unvote(self, message_id: int, user: User, source: str | None = None) -> bool:
        """Remove the user's vote (only if it came from `source`, when given)."""
        sql = "DELETE FROM feedback WHERE message_id = ? AND user_id = ?"
        args: tuple = (message_id, user.id)
        if source is not None:
            sql, args = sql + " AND source = ?", (*args, source)
        return (await self._exec(sql, args)).rowcount > 0

    async def votes(self, message_id: int) -> list[tuple[str, int]]:
        return await self._all(
            "SELECT u.platform_user_id, f.value FROM feedback f JOIN users u ON u.id = f.user_id"
            " WHERE f.message_id = ? ORDER BY u.id",
            (message_id,),
        )

    async def chat_stats(self, chat: Chat) -> dict[str, int]:
        row = await self._one(
            "SELECT COUNT(*), COALESCE(SUM(role = 'bot'), 0),"
            " (SELECT COUNT(*) FROM feedback f JOIN messages r ON r.id = f.message_id"
            "  WHERE r.chat_id = ?1 AND f.value = 1),"
            " (SELECT COUNT(*) FROM feedback f JOIN messages r ON r.id = f.message_id"
            "  WHERE r.chat_id = ?1 AND f.value = -1)"
            " FROM messages WHERE chat_id = ?1",
            (chat.id,),
        )
        return dict(zip(("messages", "replies", "up", "down"), row, strict=True))

    async def votes_since(self, since: float) -> int:
        """Votes cast (or changed) after a unix time: the scheduler's trigger."""
        row = await self._one("SELECT COUNT(*) FROM feedback WHERE created_at > ?", (since,))
        return row[0]

    async def voted_replies(self, engine: str) -> list[VotedReply]:
        """The engine's replies with the message they answer and their summed votes, oldest
        first. Only text that is still stored (forgotten users' is gone), never from or about
        people who opted out: their questions, and their votes, are left out."""
        rows = await self._all(
            "SELECT r.id, q.id, COALESCE(c.lang, ''), q.text, r.text, r.engine_version,"
            " SUM(f.value), COUNT(*) FROM messages r"
            " JOIN messages q ON q.id = r.reply_to JOIN users qu ON qu.id = q.user_id"
            " JOIN chats c ON c.id = r.chat_id"
            " JOIN feedback f ON f.message_id = r.id JOIN users fu ON fu.id = f.user_id"
            " WHERE r.role = 'bot' AND r.engine = ? AND r.text IS NOT NULL"
            " AND q.text IS NOT NULL AND qu.opted_out = 0 AND fu.opted_out = 0"
            " GROUP BY r.id ORDER BY r.id",
            (engine,),
        )
        return [VotedReply(*row) for row in rows]

    # fine-tuning jobs and adapters -------------------------------------------------------------

    async def add_job(self, kind: str, requested_by: User | None) -> int:
        row = await self._exec(
            "INSERT INTO jobs (kind, status, requested_by, created_at) VALUES (?, 'queued', ?, ?)",
            (kind, requested_by.id if requested_by else None, time.time()),
        )
        return row.lastrowid

    async def job_started(self, job_id: int, pid: int) -> None:
        await self._exec("UPDATE jobs SET status = 'running', pid = ?, started_at = ?"
                         " WHERE id = ?", (pid, time.time(), job_id))

    async def job_finished(self, job_id: int, ok: bool, detail: str,
                           adapter_id: str | None = None) -> None:
        await self._exec(
            "UPDATE jobs SET status = ?, detail = ?, adapter_id = ?, finished_at = ? WHERE id = ?",
            ("done" if ok else "failed", detail, adapter_id, time.time(), job_id),
        )

    async def fail_unfinished_jobs(self, detail: str) -> int:
        """Jobs left queued or running by a bot that stopped: they can never report back."""
        cursor = await self._exec(
            "UPDATE jobs SET status = 'failed', detail = ?, finished_at = ?"
            " WHERE status IN ('queued', 'running')", (detail, time.time()))
        return cursor.rowcount

    async def job(self, job_id: int) -> dict[str, Any] | None:
        row = await self._one("SELECT id, kind, status, pid, detail, adapter_id, created_at"
                              " FROM jobs WHERE id = ?", (job_id,))
        keys = ("id", "kind", "status", "pid", "detail", "adapter_id", "created_at")
        return dict(zip(keys, row, strict=True)) if row else None

    async def last_job_time(self) -> float:
        row = await self._one("SELECT COALESCE(MAX(created_at), 0) FROM jobs")
        return row[0]

    async def add_adapter(self, adapter: Adapter) -> None:
        await self._exec(
            "INSERT OR REPLACE INTO adapters (id, base_model, path, status, metrics, job_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, (SELECT id FROM jobs WHERE id = ?), ?)",
            (adapter.id, adapter.base_model, adapter.path, adapter.status,
             json.dumps(adapter.metrics), adapter.job_id, time.time()),
        )

    async def adapters(self) -> list[Adapter]:
        rows = await self._all(
            "SELECT id, base_model, path, status, metrics, job_id, promoted_at FROM adapters"
            " ORDER BY created_at DESC, id DESC")
        return [Adapter(r[0], r[1], r[2], r[3], json.loads(r[4] or "{}"), r[5], r[6])
                for r in rows]

    async def active_adapter(self) -> str:
        """The id of the active adapter; "" for the base model."""
        row = await self._one("SELECT id FROM adapters WHERE status = 'active'")
        return row[0] if row else ""

    async def promote(self, adapter_id: str) -> None:
        """Make `adapter_id` the active adapter; the one active before is retired."""
        async with self._write():
            await self.db.execute("UPDATE adapters SET status = 'retired' WHERE status = 'active'")
            cursor = await self.db.execute(
                "UPDATE adapters SET status = 'active', promoted_at = ? WHERE id = ?",
                (time.time(), adapter_id))
            if cursor.rowcount != 1:
                raise KeyError(f"no adapter {adapter_id!r}")

    async def rollback(self) -> tuple[str, str]:
        """Retire the active adapter and reactivate the one promoted before it ("" for the base
        model). Returns (retired id, now active id)."""
        async with self._write():
            active = await self._one(
                "SELECT id, promoted_at FROM adapters WHERE status = 'active'")
            if active is None:
                return "", ""
            before = await self._one(
                "SELECT id FROM adapters WHERE status = 'retired' AND promoted_at < ?"
                " ORDER BY promoted_at DESC LIMIT 1", (active[1],))
            await self.db.execute("UPDATE adapters SET status = 'retired', promoted_at = NULL"
                                  " WHERE id = ?", (active[0],))
            if before is not None:
                await self.db.execute("UPDATE adapters SET status = 'active' WHERE id = ?",
                                      (before[0],))
        return active[0], before[0] if before else ""

    # privacy ----------------------------------------------------------------------------------

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
