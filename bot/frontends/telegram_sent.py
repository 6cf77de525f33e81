"""Which Telegram messages show which answer, written the instant Telegram names them.

A bot killed between Telegram carrying out a send and the database hearing of it would, after
its restart, send that answer again beside the first part already in the chat. The database
write waits its turn behind the chats' other writes; this append-only file takes one system
call, so the window is the time Telegram's answer takes to be read. No text is written here:
update keys and message ids only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bot.files import private_file


class SentJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def read(self) -> dict[str, list[str]]:
        """The ids last written for each update key (a torn last line is skipped)."""
        known: dict[str, list[str]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    key, ids = json.loads(line)
                except ValueError:
                    continue
                known[key] = ids
        return known

    def open(self) -> None:
        self._fd = os.open(private_file(self.path), os.O_WRONLY | os.O_APPEND | os.O_TRUNC)

    def write(self, key: str, ids: list[str]) -> None:
        if self._fd is not None:
            os.write(self._fd, (json.dumps([key, ids]) + "\n").encode())

    def clear(self) -> None:
        """Nothing in flight: every id written here is in the database too."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
