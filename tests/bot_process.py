"""`python -m bot PLATFORM` as a process against a fake platform server, ended the ways a crash
or a person ends it (kill -9, SIGTERM) and started again on the same data."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.config import TOKEN_ENV
from tests.harness import bot_env, db_rows, write_config

STOP_SECONDS = 30  # a SIGTERM'd bot drains for seconds; on two busy cores it may take longer
# Called just before a start: what it returns waits until the new process talks to the fake.
Ready = Callable[[], Callable[[], Awaitable[Any]]]


class BotProcess:
    """One bot on `platform` at a time, its data in tmp_path/data, its stderr in
    tmp_path/bot-N.err (N counts the starts from 0); `table`: the platform's keys that point
    it at the fake."""

    def __init__(self, platform: str, tmp_path: Path, token: str, table: str,
                 ready: Ready) -> None:
        self.platform, self.tmp_path, self.token = platform, tmp_path, token
        self.table, self.ready = table, ready
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self, body: str = "", table: str = "") -> None:
        """Start it with `body` after [bot]'s default engine (echo), `table` added to the
        platform's; return once it talks to the fake."""
        config = write_config(self.tmp_path / "mine.toml", '[bot]\ndefault_engine = "echo"\n'
                              f"{body}\n[policy]\nrate_per_minute = 0\n"
                              f"[{self.platform}]\n{self.table}{table}")
        talking = self.ready()
        with open(self.log_path(self.starts), "w") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", self.platform, "--config", str(config),
                "--data-dir", str(self.tmp_path / "data"), cwd=self.tmp_path,
                env=bot_env(**{TOKEN_ENV[self.platform]: self.token}),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr)
        self.starts += 1
        await talking()

    async def kill(self) -> None:
        """kill -9, and wait until it is gone."""
        self._running().kill()
        await self._running().wait()

    def terminate(self) -> None:
        """SIGTERM: it takes nothing new, drains what is in flight and exits."""
        self._running().send_signal(signal.SIGTERM)

    async def stop(self) -> int:
        """SIGTERM (unless it has ended already), and its exit code."""
        if self._running().returncode is None:
            self.terminate()
        return await asyncio.wait_for(self._running().wait(), STOP_SECONDS)

    async def draining(self) -> None:
        """Return once the SIGTERM'd bot takes nothing new (its log says so)."""
        while "stopping: taking nothing new" not in self.log():
            if self._running().returncode is not None:
                raise AssertionError(f"the bot ended before draining: {self.log()[-2000:]}")
            await asyncio.sleep(0.02)

    async def end(self) -> None:
        """kill -9 if it still runs (the end of a test, whatever happened)."""
        if self.process is not None and self.process.returncode is None:
            await self.kill()

    def log_path(self, start: int) -> Path:
        return self.tmp_path / f"bot-{start}.err"

    def log(self, start: int = -1) -> str:
        """The stderr of one start (the latest by default)."""
        return self.log_path(start % self.starts).read_text()

    def rows(self, sql: str) -> list[tuple]:
        return db_rows(self.tmp_path / "data", sql)

    def _running(self) -> asyncio.subprocess.Process:
        assert self.process is not None, "started"
        return self.process
