"""The connection: opening the file, migrating it, and the ways every section talks to it.

One connection per process, in WAL mode with a busy timeout, so the bot and a fine-tuning job
(another process) can share the file. Writes that span several statements run in
`BEGIN IMMEDIATE` transactions under an asyncio lock: one connection is shared by every chat's
coroutine, and their statements must not interleave inside each other's transactions.

Each await on the connection is a trip to aiosqlite's thread and back, and on the bot's path
those trips, not SQLite, are what a message costs (bench/profile_router.txt). So the path a
reply takes runs its reads as one function on that thread, and its writes as one transaction
there (`_in_thread`, `_write_in_one_trip`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import aiosqlite

from bot.calm import RepeatedFailure
from bot.files import FILE_MODE, private_file
from bot.store import migrations
from bot.store.cache import ReplyCache
from bot.store.trips import Call, SharedTrips, each, each_in_savepoint

log = logging.getLogger(__name__)
BUSY_TIMEOUT_MS = 10000
WAL_CHECKPOINT_PAGES = 4000
T = TypeVar("T")


def row_id(value: int | None) -> int:
    """The id an INSERT gave its row (sqlite3 types it as possibly None: not after an INSERT)."""
    if value is None:
        raise sqlite3.DatabaseError("an INSERT gave its row no id")
    return value


class Connection:
    """The base of every section of the store: the connection, its lock, and the cache of what
    replies read (see cache.py), which every section that deletes or hides it must drop."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.path = path
        self._lock = asyncio.Lock()
        self._reads = SharedTrips(self._read_trip)
        self._writes = SharedTrips(self._write_trip)
        self._cache = ReplyCache()
        # Writes that fail for the file's sake (a full disk, a lock held past the busy timeout,
        # an I/O error): logged once a minute with a count, and `cannot_write_since` for /healthz.
        self._write_failures = RepeatedFailure(log, "the store cannot write")

    def cannot_write_since(self) -> float | None:
        """When (time.time()) the store's writes began to fail, every one since; None while
        they succeed. A health check reads it: a store that cannot write for more than a few
        seconds loses what the bot receives."""
        return self._write_failures.since

    @contextlib.contextmanager
    def _watching_writes(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:  # not IntegrityError: that is the write's own
            self._write_failures.failed(exc)
            raise
        self._write_failures.succeeded()

    @contextlib.asynccontextmanager
    async def _invalidating(self, chat_id: int | None = None, *,
                            states: bool = True) -> AsyncIterator[None]:
        """Around a write that changes what replies read (one chat's, or any chat's; engine
        states and histories, or histories only): the cache is dropped before it (so that a
        reply already under way does not write its state back after it) and after it (so
        that nothing read in between stays cached)."""
        drop = self._cache.drop if states else self._cache.drop_history
        drop(chat_id)
        try:
            yield
        finally:
            drop(chat_id)

    @classmethod
    async def open(cls, path: Path) -> Self:
        private_file(path)  # SQLite gives its -wal and -shm files the database file's mode
        db = await aiosqlite.connect(path, isolation_level=None)  # autocommit; see _write
        for pragma in (
            "journal_mode = WAL",
            "synchronous = NORMAL",
            f"busy_timeout = {BUSY_TIMEOUT_MS}",
            "foreign_keys = ON",
            "secure_delete = ON",  # /forget must leave no old text in free pages
            # A checkpoint (two fsyncs, milliseconds) stalls every chat's trip; a reply writes
            # ~15 pages, so at SQLite's default (1000) one message in ~65 paid for it. The WAL
            # may now grow to 16 MiB between checkpoints, which then copy each page once
            # however often it changed.
            f"wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}",
            # A checkpoint leaves the WAL file as long as it was, old frames and all: the text
            # of a delivery handled since (the inbox's raw update, text that is not kept)
            # would outlive it there. At 0 the first write after a checkpoint cuts the file.
            "journal_size_limit = 0",
        ):
            await db.execute(f"PRAGMA {pragma}")
        store = cls(db, path)
        try:
            await store._migrate()
            _tighten(path)
            await store.wipe_wal()  # a wipe the last run could not finish (a reader held it)
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self.db.close()

    async def wipe_wal(self) -> bool:
        """Checkpoint and truncate the WAL, so that no old copy of deleted text stays in it.
        It does not wait: while a reader in another connection (a fine-tuning job, say) holds
        an older snapshot, those pages cannot go; then it returns False at once, instead of
        stalling every chat for the busy timeout, and the caller tries again later."""
        async with self._lock:  # not inside another coroutine's open transaction
            await self.db.execute("PRAGMA busy_timeout = 0")
            try:
                rows = await self.db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
                busy, _, _ = next(iter(rows))
            finally:
                await self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return busy == 0

    async def probe_write(self) -> None:
        """One small committed write that changes nothing (the last migration's row rewritten
        as it is): it fails while the disk is full or another process holds the write lock
        past busy_timeout. /healthz asks it every few seconds (bot/health.py)."""
        async with self._write():
            await self.db.execute(
                "UPDATE schema_version SET applied_at = applied_at"
                " WHERE version = (SELECT MAX(version) FROM schema_version)")

    async def schema_version(self) -> int:
        return (await self._one("SELECT COALESCE(MAX(version), 0) FROM schema_version"))[0]

    async def _migrate(self) -> None:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        async with self._write():
            done = await self.schema_version()
            # Looked up on the module each time, so that a test can add a step.
            for version, step in enumerate(migrations.MIGRATIONS[done:], start=done + 1):
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
            with self._watching_writes():
                return await self.db.execute(sql, args)

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        """A transaction, for writes of several statements that must land together. IMMEDIATE
        takes the file's write lock first (waiting up to busy_timeout), so no statement inside
        can fail on a snapshot that another process made stale."""
        async with self._lock:
            with self._watching_writes():
                await self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    await self.db.execute("ROLLBACK")
                    raise
                await self.db.execute("COMMIT")

    async def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` with the sqlite3 connection on aiosqlite's thread: several statements for
        one trip. aiosqlite has no public call for this; `_execute` is the one every method of
        its own goes through (the version is pinned in pyproject.toml, and every test that
        stores a reply passes here). `fn` must not block on anything but SQLite."""
        db = self.db
        return await db._execute(lambda: fn(db._conn))

    async def _read_in_one_trip(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn`'s reads in one trip, shared with other callers' under load (see trips.py)."""
        return await self._reads(fn)

    async def _write_in_one_trip(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` as one transaction, or part of one shared with other callers' under load, each
        in a savepoint of its own (see trips.py). It returns once committed. Once queued it
        runs to the end on the thread even if the caller is cancelled meanwhile, so it lands
        whole or not at all, and never leaves a transaction open."""
        return await self._writes(fn)

    async def _read_trip(self, calls: list[Call]) -> list[tuple[bool, Any]]:
        return await self._in_thread(lambda conn: each(conn, calls))

    async def _write_trip(self, calls: list[Call]) -> list[tuple[bool, Any]]:
        async with self._lock:  # not inside another coroutine's open transaction
            try:
                outcomes = await self._in_thread(
                    lambda conn: _transaction(conn, lambda c: each_in_savepoint(c, calls)))
            except sqlite3.OperationalError as exc:
                self._write_failures.failed(exc)
                raise
        # A call that failed alone (in its savepoint) for the file's sake counts too.
        failed = [r for ok, r in outcomes if not ok and isinstance(r, sqlite3.OperationalError)]
        if failed:
            self._write_failures.failed(failed[0])
        else:
            self._write_failures.succeeded()
        return outcomes

    # Each await on the connection is a hop to its thread and back (~0.1 ms), so every read is
    # one hop (execute_fetchall), never execute/fetch/close. That also matters for locking: a
    # SELECT left open across hops pins an old snapshot, and a write started beside it fails
    # at once ("database is locked") if another process committed since, busy_timeout or not.
    async def _all(self, sql: str, args: tuple = ()) -> list[Any]:
        return list(await self.db.execute_fetchall(sql, args))

    async def _one(self, sql: str, args: tuple = ()) -> Any:
        rows = list(await self.db.execute_fetchall(sql, args))
        return rows[0] if rows else None


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT too: never leave one open
            conn.execute("ROLLBACK")
        raise
    return result


def _tighten(path: Path) -> None:
    """The WAL files of a database made before files were private keep their old mode."""
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(FILE_MODE)
