"""The schema, as ordered steps. Each runs once, in its own transaction (see
Connection._migrate), and is recorded in `schema_version`; existing databases depend on every
step staying exactly as it was, so a change to the schema is a new step at the end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiosqlite

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
        ALTER TABLE chats ADD COLUMN adapter TEXT;  -- NULL: the active one, 'base': none
        UPDATE chats SET adapter = (SELECT json_extract(e.state, '$.adapter') FROM engine_state e
                                    WHERE e.chat_id = chats.id AND e.engine = 'transformer');
        UPDATE engine_state SET state = json_remove(state, '$.adapter')
            WHERE engine = 'transformer'
        """,
    )


async def _script(db: aiosqlite.Connection, sql: str) -> None:
    """Run statements one by one: executescript would commit the migration's transaction.
    The split is on every ";", so none may appear inside a comment or a string literal."""
    for statement in sql.split(";"):
        if statement.strip():
            await db.execute(statement)
