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


@migration
async def m003_participants(db: aiosqlite.Connection) -> None:
    """Who has written in which chat, kept by a trigger (no extra trip per message) and not
    pruned with the messages, so /forget still finds the chats whose engine state (ELIZA's
    memories) may hold a person's words after retention has deleted their messages."""
    await _script(
        db,
        """
        CREATE TABLE participants (
            chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            PRIMARY KEY (chat_id, user_id)
        );
        INSERT OR IGNORE INTO participants
            SELECT DISTINCT chat_id, user_id FROM messages
            WHERE role = 'user' AND user_id IS NOT NULL
        """,
    )
    await db.execute(  # one statement: a trigger's body has its own ";"
        "CREATE TRIGGER participant_writes AFTER INSERT ON messages"
        " WHEN NEW.role = 'user' AND NEW.user_id IS NOT NULL"
        " BEGIN INSERT OR IGNORE INTO participants VALUES (NEW.chat_id, NEW.user_id); END"
    )


@migration
async def m004_adapter_trained(db: aiosqlite.Connection) -> None:
    """A new status, 'trained': `python -m finetune train` registers what it wrote before any
    evaluation judged it. SQLite cannot alter a CHECK, so the table is built anew, rows kept
    (no other table refers to it; job_id's reference to jobs stays as it was)."""
    await _script(
        db,
        """
        CREATE TABLE adapters_new (
            id TEXT PRIMARY KEY,
            base_model TEXT NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('trained', 'candidate', 'active', 'rejected', 'retired')),
            metrics TEXT,
            job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
            created_at REAL NOT NULL,
            promoted_at REAL
        );
        INSERT INTO adapters_new (id, base_model, path, status, metrics, job_id, created_at,
                                  promoted_at)
            SELECT id, base_model, path, status, metrics, job_id, created_at, promoted_at
            FROM adapters;
        DROP TABLE adapters;
        ALTER TABLE adapters_new RENAME TO adapters
        """,
    )


@migration
async def m005_inbox(db: aiosqlite.Connection) -> None:
    """Deliveries kept before the platform is told they arrived (see bot/store/inbox.py)."""
    await _script(
        db,
        """
        CREATE TABLE inbox (
            platform TEXT NOT NULL,
            key TEXT NOT NULL,
            payload TEXT NOT NULL,
            received_at REAL NOT NULL,
            reply_ids TEXT,
            done_at REAL,
            PRIMARY KEY (platform, key)
        );
        CREATE INDEX inbox_unhandled ON inbox (platform, done_at)
        """,
    )


@migration
async def m006_platform_message_ids(db: aiosqlite.Connection) -> None:
    """A person's message keeps the platform's id of it, so that one delivered again after a
    restart is found, not stored twice (no extra trip: it is a column of the same insert)."""
    await _script(
        db,
        """
        ALTER TABLE messages ADD COLUMN platform_msg_id TEXT;
        CREATE INDEX messages_by_platform_id ON messages (chat_id, platform_msg_id)
            WHERE platform_msg_id IS NOT NULL
        """,
    )


@migration
async def m007_adapter_rollback_time(db: aiosqlite.Connection) -> None:
    """When an adapter was rolled back (by /rollback or by the live guard, bot/guard.py), so
    /stats can mark it; a rolled-back adapter keeps the time of its promotion beside it."""
    await db.execute("ALTER TABLE adapters ADD COLUMN rolled_back_at REAL")
