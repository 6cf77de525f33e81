"""What the tests share: a bot to talk to (in process, or on a fake platform), one `say`, reads
of its store, `eventually`, and `python -m bot` run as a person runs it. Test modules import
from here (and from the fakes and the helper modules), never from each other."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import DB_FILE, load_config
from bot.events import Incoming, Sink
from bot.frontends import FRONTENDS
from engines.registry import BUILTIN

ROOT = Path(__file__).resolve().parent.parent

TEST_ENGINES = """
[plugins]
engines = { echo = "tests.engines:EchoEngine", broken = "tests.engines:BrokenEngine", \
hanging = "tests.engines:HangingEngine", unloadable = "tests.engines:UnloadableEngine" }
"""


class RecordingSink(Sink):
    """A Sink that keeps every update and the final text, as a frontend would show them; one
    message only, like a platform that cannot send another."""

    def __init__(self) -> None:
        self.updates: list[str] = []
        self.final: str | None = None

    async def update(self, text: str) -> None:
        self.updates.append(text)

    async def finish(self, text: str) -> list[str]:
        self.final = text
        return [f"sent-{id(self)}"]


class ChatSink(Sink):
    """A sink whose messages, and those of the sinks it makes with another(), land in one chat
    (`chat`, the texts in order); a message's id is its place there: "m1", "m2"…"""

    def __init__(self, chat: list[str] | None = None) -> None:
        self.chat = [] if chat is None else chat

    async def finish(self, text: str) -> list[str]:
        self.chat.append(text)
        return [f"m{len(self.chat)}"]

    def another(self) -> ChatSink:
        return ChatSink(self.chat)


def write_config(path: Path, body: str = "", engines: bool = True) -> Path:
    path.write_text((TEST_ENGINES if engines else "") + body, encoding="utf-8")
    return path


def make_config(tmp_path: Path, body: str = ""):
    """A Config with the test engines, the echo engine by default, data under tmp_path."""
    path = write_config(tmp_path / "config.toml", '[bot]\ndefault_engine = "echo"\n' + body)
    return load_config(path, FRONTENDS, BUILTIN, data_dir=str(tmp_path / "data"))


def msg(text: str, chat: str = "c1", user: str = "u1", platform: str = "test",
        **kw: Any) -> Incoming:
    return Incoming(platform=platform, chat_id=chat, user_id=user, user_name=user, text=text,
                    **kw)


async def say(router: Any, text: str, chat: str = "c1", user: str = "u1",
              platform: str = "test", sink: Sink | None = None, **kw: Any) -> Any:
    """`user` says `text` in `chat` (Incoming's other fields in `kw`: is_admin, is_group…);
    the sink it was answered in, a RecordingSink unless `sink` is given. The console is the
    bot's admin: platform="console" says it as the operator."""
    sink = RecordingSink() if sink is None else sink
    await router.handle(msg(text, chat, user, platform, **kw), sink)
    return sink


async def rows(router: Any, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows of the running router's database."""
    async with router.store.db.execute(sql, args) as cursor:
        return list(await cursor.fetchall())


async def votes_on(store: Any, message_id: int) -> list[tuple[str, int]]:
    """The votes on a stored reply: (platform user id, +1 or -1), in the order people came."""
    async with store.db.execute(
            "SELECT u.platform_user_id, f.value FROM feedback f JOIN users u ON u.id = f.user_id"
            " WHERE f.message_id = ? ORDER BY u.id", (message_id,)) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def job_row(store: Any, job_id: int) -> dict[str, Any] | None:
    """A fine-tuning job as stored."""
    keys = ("id", "kind", "status", "pid", "detail", "adapter_id", "created_at")
    async with store.db.execute(f"SELECT {', '.join(keys)} FROM jobs WHERE id = ?",
                                (job_id,)) as cursor:
        row = await cursor.fetchone()
    return dict(zip(keys, row, strict=True)) if row else None


def db_rows(data_dir: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows of the database in `data_dir`, read from outside (the bot may be a process)."""
    with sqlite3.connect(data_dir / DB_FILE) as db:
        return db.execute(sql, args).fetchall()


@contextlib.asynccontextmanager
async def write_lock_held(path: Path) -> AsyncIterator[None]:
    """Another process's writer holding the database's write lock. Taken in a thread: the bot's
    own write in progress needs the event loop to reach its COMMIT, so waiting for the lock on
    the loop's thread would hold both sides for the busy timeout and fail with "locked"."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
    finally:
        other.close()


async def eventually(check: Callable[[], Any], what: str = "", timeout: float = 5.0,
                     every: float = 0.02) -> Any:
    """Wait until `check()` (a plain or an async function) gives something true; that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        await asyncio.sleep(every)


async def eventually_equal(read: Callable[[], Any], expected: Any, timeout: float = 5.0) -> None:
    """Wait until the async `read()` gives `expected`; the last value in the failure."""
    seen: list[Any] = []

    async def equal() -> bool:
        seen[:] = [await read()]
        return seen[0] == expected

    try:
        await eventually(equal, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{seen[0]!r} != {expected!r}") from None


def running_bot(platform: str, tmp_path: Path, *args: Any, **kw: Any):
    """`async with running_bot("telegram", tmp_path) as bot`: the real App with that
    platform's frontend against its fake server (tests/telegram_bot.py, tests/discord_bot.py
    say what else it takes), the real router and store."""
    return importlib.import_module(f"tests.{platform}_bot").running(tmp_path, *args, **kw)


def bot_process(platform: str, tmp_path: Path):
    """`async with bot_process("discord", tmp_path) as (fake, bot)`: `python -m bot` on that
    platform's fake server as a process (tests/bot_process.py), to start, kill, stop and
    start again; killed at the end of the block."""
    return importlib.import_module(f"tests.{platform}_bot").process(tmp_path)


@contextlib.asynccontextmanager
async def frontend_running(app: Any) -> AsyncIterator[tuple[Any, Any]]:
    """The app's router serving and its one frontend started; stopped as `python -m bot`
    stops: the router drained first, then the frontend."""
    async with app.serving() as router:
        frontend = app.frontends[0]
        await frontend.start(router)
        try:
            yield router, frontend
        finally:
            await router.drain(10)
            await frontend.stop()


def bot_env(**variables: str) -> dict[str, str]:
    """The environment `python -m bot` runs in: this tree on the path, loopback without a
    proxy, and no platform token but those given."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1,localhost")
    env.pop("DISCORD_TOKEN", None)
    env.pop("TELEGRAM_TOKEN", None)
    return env | variables


def run_console(args: list[str], lines: list[str], cwd: Path, timeout: float = 60):
    """`python -m bot console ARGS` with `lines` piped in; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input="".join(f"{line}\n" for line in lines),
        capture_output=True, text=True, cwd=cwd, env=bot_env(), timeout=timeout,
    )


async def listen_on_loopback(app: Any) -> tuple[Any, int]:
    """Start an aiohttp app on 127.0.0.1 at a free port: (runner to clean up, port)."""
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


# Tests whose processes import torch (a fine-tuning job, torchrun's two workers, transformers
# serve, a wheel installed and run) or build the n-gram model cold: 20-45 s each on this 2-core
# machine under the others' load, and several times that with another `make test` beside them
# (issue 29). They get HEAVY_SECONDS instead of pytest's 120, and their inner waits HEAVY_WAIT,
# less, so that what hangs fails with its output before pytest-timeout ends the test.
HEAVY_SECONDS = 360
HEAVY_WAIT = HEAVY_SECONDS - 60
heavy = pytest.mark.timeout(HEAVY_SECONDS)
SERVER_START_SECONDS = HEAVY_WAIT // 3  # importing torch and transformers serve


def wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"transformers serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"transformers serve did not start in {SERVER_START_SECONDS} s: "
                f"{log.read_text()[-2000:]}")


@contextlib.contextmanager
def transformers_serve(model: Path, folder: Path) -> Iterator[str]:
    """`transformers serve` running `model` offline on the CPU in float32, on a free loopback
    port, until the block ends: its base URL (…/v1). Its log is folder/serve.log."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "hub").mkdir(exist_ok=True)  # /v1/models scans the hub cache: empty lists nothing
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_CACHE=str(folder / "hub"), NO_PROXY="127.0.0.1,localhost")
    cli = Path(sys.executable).with_name("transformers")
    log = folder / "serve.log"
    server = subprocess.Popen(
        [str(cli), "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--device", "cpu", "--dtype", "float32"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))  # noqa: SIM115
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", server, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)
