"""One "typing…" indicator per chat, however many of its messages wait for an answer.

A chat's messages are answered one at a time; if each waiting message kept its own indicator
alive, a busy group with a backlog of hundreds would send hundreds of typing requests every
few seconds (issue 30: 13,618 for 138 replies). Here the first message of a chat to want the
indicator starts one loop, later ones only count themselves in, and the loop ends when the
last of them is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

# Runs until cancelled, showing the indicator in one chat (the platform's own loop).
KeepTyping = Callable[[], Coroutine[Any, Any, None]]


class ChatTyping:
    def __init__(self) -> None:
        self._shown: dict[str, tuple[int, asyncio.Task]] = {}  # chat -> (wanted by, loop)

    @contextlib.asynccontextmanager
    async def shown(self, chat: str, keep_typing: KeepTyping) -> AsyncIterator[None]:
        """The indicator shows in `chat` while this (or any other) holder is inside. Entering
        never waits: a chat's messages reach the router in the order they came."""
        count, task = self._shown.get(chat, (0, None))
        if task is None:
            task = asyncio.create_task(keep_typing(), name=f"typing-{chat}")
        self._shown[chat] = (count + 1, task)
        try:
            yield
        finally:
            await self._leave(chat)

    async def _leave(self, chat: str) -> None:
        count, task = self._shown[chat]
        if count > 1:
            self._shown[chat] = (count - 1, task)
            return
        del self._shown[chat]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def loops(self) -> int:
        """How many chats show the indicator now."""
        return len(self._shown)
