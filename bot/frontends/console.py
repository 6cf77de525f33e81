"""The console: a prompt on a terminal, or one message per line from a pipe.

Piped, it prints each reply as one block and exits at end of input, so a session can be
scripted: printf '/engine eliza\nMen are all alike.\n' | python -m bot console
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from bot import logs
from bot.events import Incoming, Sink
from bot.frontends import Frontend

if TYPE_CHECKING:
    from bot.router import Router


@dataclass(frozen=True)
class ConsoleOptions:
    user_name: str = ""  # shown to engines; empty: the login name
    prompt: str = "> "


class ConsoleFrontend(Frontend):
    platform: ClassVar[str] = "console"
    Options: ClassVar[type] = ConsoleOptions

    def __init__(
        self, options: ConsoleOptions, config: Any, token: str = "",
        stdin: IO[str] | None = None, stdout: IO[str] | None = None,
    ) -> None:
        self.options = options
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty()
        self.user = options.user_name or _login_name()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def start(self, router: Router) -> None:
        loop = asyncio.get_running_loop()
        # A daemon thread, not the default executor: a blocked readline must not keep the
        # process alive at shutdown.
        threading.Thread(target=self._read, args=(loop,), daemon=True, name="console").start()
        self._task = asyncio.create_task(self._serve(router), name="console")

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in iter(self.stdin.readline, ""):
            loop.call_soon_threadsafe(self._lines.put_nowait, line)
        loop.call_soon_threadsafe(self._lines.put_nowait, None)

    async def _serve(self, router: Router) -> None:
        if self.interactive and (greeting := await router.greeting("console", "console")):
            self._write(greeting + "\n")
        number = 0
        while True:
            if self.interactive:
                self._write(self.options.prompt)
            line = await self._lines.get()
            if line is None:
                break
            if not line.strip():
                continue
            number += 1
            incoming = Incoming(
                platform="console", chat_id="console", user_id=self.user, user_name=self.user,
                text=line.rstrip("\r\n"), message_id=f"m{number}", is_admin=True,
            )
            with logs.fields(chat="console:console"):
                await router.handle(incoming, ConsoleSink(self, f"r{number}"))
            if not router.accepting:  # shutting down: a cut-off reply was the last one
                break

    def _write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Read no more lines (the app has drained the router: no reply is in flight)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class ConsoleSink(Sink):
    """On a terminal a reply grows as the engine streams it; piped, it is printed once, whole."""

    def __init__(self, console: ConsoleFrontend, reply_id: str) -> None:
        self.console = console
        self.reply_id = reply_id
        self.shown = ""
        self._others = 0

    def another(self) -> ConsoleSink:
        """A sink for one more message in this chat (a /compare sends one per engine)."""
        self._others += 1
        return ConsoleSink(self.console, f"{self.reply_id}.{self._others}")

    async def update(self, text: str) -> None:
        if self.console.interactive:
            self._show(text)

    async def finish(self, text: str) -> list[str]:
        self._show(text)
        self.console._write("\n")
        return [self.reply_id]

    async def send_file(self, path: Path, caption: str) -> None:
        """A file (a loss curve, say) cannot be shown in a terminal: its path is."""
        self.console._write(f"{caption}: {path}\n")

    def _show(self, text: str) -> None:
        if text.startswith(self.shown):
            self.console._write(text[len(self.shown):])
        else:  # rewritten (a status line that moved on, an apology): print from what changed
            old, new = self.shown.split("\n"), text.split("\n")
            same = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                        min(len(old), len(new)))
            self.console._write("\n" + "\n".join(new[same:]))
        self.shown = text


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "you"
