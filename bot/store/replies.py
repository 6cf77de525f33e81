"""A reply's way through the store: what it needs, read in one trip; what it leaves, written in
one transaction; and each chat's engine state, read once per process and written when changed.

Every trip to the connection's thread costs more than the SQLite work inside it, so a message
that is answered costs two: `context` before the engine runs, `record` after the reply was
delivered. Both the person's message and the reply land in `record`, together: a bot killed
before then has stored neither, and the platform delivers the message again where it can
(Telegram's durable inbox, bot/store/inbox.py), so nothing it was told it has is lost.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from bot.store.connection import CachedState, Connection
from bot.store.messages import HISTORY, INSERT_MESSAGE, INSERT_REF, turns
from bot.store.people import Chat, User
from engines.base import Turn

READ_STATE = "SELECT state FROM engine_state WHERE chat_id = ? AND engine = ?"
WRITE_STATE = "INSERT OR REPLACE INTO engine_state VALUES (?, ?, ?)"


@dataclass
class Context:
    """What an engine is handed for one message."""

    turns: list[Turn]
    state: dict[str, Any]  # the chat's engine state, the cached object: the engine changes it
    epoch: int  # the cache's epoch it was read in (see Connection._state_epoch)


@dataclass
class Exchange:
    """What one answered message leaves behind, written in one transaction."""

    chat: Chat
    user: User
    asked: str | None  # the person's text (None: it may not be kept)
    reply: str | None  # the reply's text (None: it may not be kept)
    engine: str
    engine_version: str
    asked_id: int | None = None  # the person's message, if stored already (a redelivery)
    platform_msg_id: str = ""  # the platform's id of the person's message
    platform_ids: list[str] = field(default_factory=list)  # the reply's messages
    trace: dict[str, Any] = field(default_factory=dict)
    state: Context | None = None  # the context whose state to keep; None: kept in memory only


class Replies(Connection):
    async def context(self, chat: Chat, engine: str, limit: int) -> Context:
        """The last `limit` turns (see HISTORY) and the chat's engine state, in one trip."""
        key, epoch = (chat.id, engine), self._state_epoch
        cached = self._states.get(key)

        def read(conn: sqlite3.Connection) -> tuple[list, tuple | None]:
            rows = conn.execute(HISTORY, (chat.id, chat.history_from, limit)).fetchall()
            return rows, None if cached else conn.execute(READ_STATE, key).fetchone()

        rows, stored = await self._read_in_one_trip(read)
        if cached is None:
            cached = _parsed(stored[0] if stored else "")
            if epoch == self._state_epoch:  # nothing was deleted meanwhile
                self._states[key] = cached
        return Context(turns(rows), cached.value, epoch)

    async def record(self, exchange: Exchange) -> tuple[int, int]:
        """Store the person's message (unless stored already), the reply with the platform ids
        it was sent as, and the engine state if it changed; returns both messages' ids."""
        x, now = exchange, time.time()
        state = _changed_state(self._states, x)
        user_row = (x.chat.id, x.user.id, "user", x.asked, None, None, None, None, now,
                    x.platform_msg_id or None)

        def write(conn: sqlite3.Connection) -> tuple[int, int]:
            asked = x.asked_id or conn.execute(INSERT_MESSAGE, user_row).lastrowid
            reply = conn.execute(INSERT_MESSAGE, (
                x.chat.id, x.user.id, "bot", x.reply, asked, x.engine, x.engine_version,
                json.dumps(x.trace) if x.trace else None, now, None)).lastrowid
            conn.executemany(INSERT_REF, [(x.chat.id, pid, reply) for pid in x.platform_ids
                                          if pid])
            # Checked here, on the thread, in the order the writes run: a deletion of engine
            # state queued before this transaction has bumped the epoch already.
            if state is not None and x.state.epoch == self._state_epoch:
                conn.execute(WRITE_STATE, (x.chat.id, x.engine, state))
            return asked, reply

        try:
            ids = await self._write_in_one_trip(write)
        except BaseException:
            self._states.pop((x.chat.id, x.engine), None)  # changed in place, not stored
            raise
        if state is not None:
            cached = self._states.get((x.chat.id, x.engine))
            if cached is not None and cached.value is x.state.state:
                cached.stored = state
        return ids

    async def engine_state(self, chat: Chat, engine: str) -> dict[str, Any]:
        """The chat's engine state as stored (a copy of its own)."""
        cached = self._states.get((chat.id, engine))
        if cached is not None:
            return json.loads(cached.stored or "{}")
        row = await self._one(READ_STATE, (chat.id, engine))
        return json.loads(row[0]) if row else {}

    async def save_engine_state(self, chat: Chat, engine: str, state: dict[str, Any]) -> None:
        self._states.pop((chat.id, engine), None)
        await self._exec(WRITE_STATE, (chat.id, engine, json.dumps(state, ensure_ascii=False)))


def _parsed(stored: str) -> CachedState:
    return CachedState(json.loads(stored) if stored else {}, stored)


def _changed_state(states: dict[tuple[int, str], CachedState], x: Exchange) -> str | None:
    """The state's JSON if it is to be written: kept, and not as stored."""
    if x.state is None:
        return None
    new = json.dumps(x.state.state, ensure_ascii=False)
    cached = states.get((x.chat.id, x.engine))
    old = cached.stored if cached is not None and cached.value is x.state.state else None
    if new == old or (old == "" and not x.state.state):
        return None
    return new
