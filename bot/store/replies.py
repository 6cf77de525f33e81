"""A reply's way through the store: what it needs, read in one trip at most; what it leaves,
written in one transaction; and each chat's engine state and last turns, kept in memory (see
cache.py) and written when changed.

Every trip to the connection's thread costs more than the SQLite work inside it, so a message
that is answered costs one trip, `add_exchange`, after the reply was delivered; `recall`,
before the engine runs, takes one only when a chat is first seen (or after its cache was
dropped). Both the person's message and the reply land in `add_exchange`, together: a bot
killed before then has stored neither, and the platform delivers the message again where it
can (Telegram's durable inbox, bot/store/inbox.py), so nothing it was told it has is lost.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from bot.store.cache import CachedHistory, CachedState
from bot.store.connection import Connection, row_id
from bot.store.messages import HISTORY, INSERT_MESSAGE, INSERT_REF, turns
from bot.store.people import Chat, User
from engines.base import Turn

log = logging.getLogger(__name__)
READ_STATE = "SELECT state FROM engine_state WHERE chat_id = ? AND engine = ?"
# An update in place where the row exists (REPLACE would delete and insert it, writing its
# index too): fewer pages per commit, and fewer WAL checkpoints.
WRITE_STATE = ("INSERT INTO engine_state VALUES (?, ?, ?)"
               " ON CONFLICT (chat_id, engine) DO UPDATE SET state = excluded.state")


@dataclass
class Recalled:
    """What the store recalls of a chat for one message (its last turns, the engine's state),
    handed to the engine, and where it came from in the cache."""

    turns: list[Turn]  # a copy: the engine may keep it
    state: dict[str, Any]  # the chat's engine state, the cached object: the engine changes it
    state_epoch: int  # the cache's state epoch when it was read (see ReplyCache)
    history: CachedHistory | None  # the cached history, to add this exchange's turns to


@dataclass
class Exchange:
    """What one answered message leaves behind, written in one transaction."""

    chat: Chat
    user: User
    asked: str | None  # the person's text (None: it may not be kept)
    reply: str | None  # the reply's text (None: it may not be kept)
    engine: str
    engine_version: str
    recalled: Recalled  # what the reply was made from
    asked_id: int | None = None  # the person's message, if stored already (a redelivery)
    platform_msg_id: str = ""  # the platform's id of the person's message
    platform_ids: list[str] = field(default_factory=list)  # the reply's messages
    trace: dict[str, Any] = field(default_factory=dict)
    keep_state: bool = True  # False: the engine state stays in memory (see the router)


class Replies(Connection):
    async def recall(self, chat: Chat, engine: str, limit: int) -> Recalled:
        """The last `limit` turns (see HISTORY) and the chat's engine state: from memory once
        read, else in one trip."""
        cache, key = self._cache, (chat.id, engine)
        state, history = cache.states.get(key), cache.histories.get(chat.id)
        if history is not None and (history.history_from, history.limit) != (
                chat.history_from, limit):
            history = None
        state_epoch, history_epoch = cache.state_epoch, cache.history_epoch
        if state is None or history is None:
            rows, stored = await self._read_in_one_trip(
                lambda conn: _read(conn, chat, key, limit, history is None, state is None))
            if state is None:
                state = _parsed(stored[0] if stored else "")
                if state_epoch == cache.state_epoch:  # nothing was deleted meanwhile
                    cache.states[key] = state
            if history is None:
                history = CachedHistory(chat.history_from, limit, turns(rows))
                if history_epoch == cache.history_epoch:
                    cache.histories[chat.id] = history
        return Recalled(list(history.turns), state.value, state_epoch, history)

    async def add_exchange(self, exchange: Exchange) -> tuple[int, int]:
        """Store the person's message (unless stored already), the reply with the platform ids
        it was sent as, and the engine state if it changed; returns both messages' ids."""
        x, now, cache = exchange, time.time(), self._cache
        state = _changed_state(cache.states, x)
        user_row = (x.chat.id, x.user.id, "user", x.asked, None, None, None, None, now,
                    x.platform_msg_id or None)

        def write(conn: sqlite3.Connection) -> tuple[int, int]:
            asked = x.asked_id or row_id(conn.execute(INSERT_MESSAGE, user_row).lastrowid)
            reply = row_id(conn.execute(INSERT_MESSAGE, (
                x.chat.id, x.user.id, "bot", x.reply, asked, x.engine, x.engine_version,
                json.dumps(x.trace) if x.trace else None, now, None)).lastrowid)
            conn.executemany(INSERT_REF, [(x.chat.id, pid, reply) for pid in x.platform_ids
                                          if pid])
            # Checked here, on the thread, in the order the writes run: a deletion of engine
            # state queued before this transaction has bumped the epoch already.
            if state is not None and x.recalled.state_epoch == cache.state_epoch:
                conn.execute(WRITE_STATE, (x.chat.id, x.engine, state))
            return asked, reply

        try:
            ids = await self._write_in_one_trip(write)
        except BaseException:  # the state was changed in place, and the turns are unknown
            cache.states.pop((x.chat.id, x.engine), None)
            cache.drop_history(x.chat.id)
            raise
        self._remember(x, state)
        return ids

    def _remember(self, x: Exchange, state: str | None) -> None:
        """Bring the cache up to date with what was just written."""
        cached = self._cache.states.get((x.chat.id, x.engine))
        if state is not None and cached is not None and cached.value is x.recalled.state:
            cached.stored = state
        history = x.recalled.history
        if history is None or self._cache.histories.get(x.chat.id) is not history:
            return  # dropped meanwhile: read again next time
        if x.asked is not None and x.asked_id is None:  # a stored one was read with the rest
            history.add(Turn("user", x.asked, x.user.name))
        if x.reply is not None:
            history.add(Turn("bot", x.reply))

    async def engine_state(self, chat: Chat, engine: str) -> dict[str, Any]:
        """The chat's engine state as stored (a copy of its own)."""
        cached = self._cache.states.get((chat.id, engine))
        if cached is not None:
            return json.loads(cached.stored or "{}")
        row = await self._one(READ_STATE, (chat.id, engine))
        return json.loads(row[0]) if row else {}

    async def save_engine_state(self, chat: Chat, engine: str, state: dict[str, Any]) -> None:
        self._cache.states.pop((chat.id, engine), None)
        await self._exec(WRITE_STATE, (chat.id, engine, json.dumps(state, ensure_ascii=False)))


def _read(conn: sqlite3.Connection, chat: Chat, key: tuple[int, str], limit: int,
          history: bool, state: bool) -> tuple[list, tuple | None]:
    rows = conn.execute(HISTORY, (chat.id, chat.history_from, limit)).fetchall() if history else []
    return rows, conn.execute(READ_STATE, key).fetchone() if state else None


def _parsed(stored: str) -> CachedState:
    return CachedState(json.loads(stored) if stored else {}, stored)


def _changed_state(states: dict[tuple[int, str], CachedState], x: Exchange) -> str | None:
    """The state's JSON if it is to be written: kept, and not as stored."""
    if not x.keep_state:
        return None
    try:
        new = json.dumps(x.recalled.state, ensure_ascii=False)
    except (TypeError, ValueError):  # an engine's bug: its state is lost, not the messages
        log.error("engine %s left a state that is not JSON; not stored", x.engine,
                  exc_info=True)
        return None
    cached = states.get((x.chat.id, x.engine))
    old = cached.stored if cached is not None and cached.value is x.recalled.state else None
    if new == old or (old == "" and not x.recalled.state):
        return None
    return new
