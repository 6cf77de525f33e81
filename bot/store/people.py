"""Chats and users: created on first sight and cached, with their settings."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from bot.store.connection import Connection

FIND_CHAT = ("SELECT id, engine, lang, history_from, COALESCE(adapter, '') FROM chats"
             " WHERE platform = ? AND platform_chat_id = ?")


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


class People(Connection):
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        super().__init__(db, path)
        self._chats: dict[tuple[str, str], Chat] = {}
        self._users: dict[tuple[str, str], User] = {}

    # Two coroutines may miss the cache at once (right after a start); `setdefault` makes them
    # share one object, so that a change through one (/optout, /engine) is seen by both.
    async def chat(self, platform: str, platform_chat_id: str, title: str = "") -> Chat:
        """The chat, created on first sight (one trip)."""
        key = (platform, platform_chat_id)
        if key not in self._chats:
            row = await self._add_and_find(
                "INSERT INTO chats (platform, platform_chat_id, title, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (platform, platform_chat_id, title or None, time.time()), FIND_CHAT, key)
            self._chats.setdefault(key, Chat(row[0], *key, *row[1:]))
        return self._chats[key]

    async def find_chat(self, platform: str, platform_chat_id: str) -> Chat | None:
        """The chat if the bot has seen it, without creating it."""
        key = (platform, platform_chat_id)
        if key not in self._chats:
            row = await self._one(FIND_CHAT, key)
            if row is None:
                return None
            self._chats.setdefault(key, Chat(row[0], *key, *row[1:]))
        return self._chats[key]

    async def user(self, platform: str, platform_user_id: str, name: str = "") -> User:
        """The person, created on first sight (one trip)."""
        key = (platform, platform_user_id)
        if key not in self._users:
            row = await self._add_and_find(
                "INSERT INTO users (platform, platform_user_id, name, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (platform, platform_user_id, name or None, time.time()),
                "SELECT id, name, opted_out FROM users WHERE platform = ? AND platform_user_id = ?",
                key)
            self._users.setdefault(key, User(row[0], *key, row[1] or "", bool(row[2])))
        return self._users[key]

    async def _add_and_find(self, add: str, add_args: tuple, find: str, key: tuple) -> tuple:
        def run(conn: sqlite3.Connection) -> tuple:
            conn.execute(add, add_args)
            return conn.execute(find, key).fetchone()

        async with self._lock:  # the insert commits on its own: not inside a transaction
            return await self._in_thread(run)

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
        async with self._invalidating(chat.id), self._write():
            row = await self._one(
                "SELECT COALESCE(MAX(id), 0) FROM messages WHERE chat_id = ?", (chat.id,)
            )
            await self.db.execute("UPDATE chats SET history_from = ? WHERE id = ?",
                                  (row[0], chat.id))
            await self.db.execute("DELETE FROM engine_state WHERE chat_id = ?", (chat.id,))
        chat.history_from = row[0]

    async def set_opted_out(self, user: User, opted_out: bool) -> None:
        """Opting out hides the person's turns from every chat's history (and opting in shows
        them again): the histories kept in memory go."""
        async with self._invalidating(states=False):
            await self._exec("UPDATE users SET opted_out = ? WHERE id = ?",
                             (int(opted_out), user.id))
        user.opted_out = opted_out
