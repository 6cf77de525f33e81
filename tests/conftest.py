"""Shared test helpers: no network, a real SQLite store per test, a sink that records."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_config
from bot.events import Incoming
from bot.frontends import FRONTENDS
from engines.registry import BUILTIN

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub: never download
ROOT = Path(__file__).resolve().parent.parent

TEST_ENGINES = """
[plugins]
engines = { echo = "tests.engines:EchoEngine", broken = "tests.engines:BrokenEngine", \
hanging = "tests.engines:HangingEngine", unloadable = "tests.engines:UnloadableEngine" }
"""


class RecordingSink:
    """A Sink that keeps every update and the final text, as a frontend would show them."""

    def __init__(self) -> None:
        self.updates: list[str] = []
        self.final: str | None = None

    async def update(self, text: str) -> None:
        self.updates.append(text)

    async def finish(self, text: str) -> list[str]:
        self.final = text
        return [f"sent-{id(self)}"]


def write_config(path: Path, body: str = "", engines: bool = True) -> Path:
    path.write_text((TEST_ENGINES if engines else "") + body, encoding="utf-8")
    return path


def make_config(tmp_path: Path, body: str = ""):
    """A Config with the test engines, the echo engine by default, data under tmp_path."""
    path = write_config(tmp_path / "config.toml", '[bot]\ndefault_engine = "echo"\n' + body)
    return load_config(path, FRONTENDS, BUILTIN, data_dir=str(tmp_path / "data"))


def run_console(args: list[str], lines: list[str], cwd: Path, timeout: float = 60):
    """`python -m bot console ARGS` with `lines` piped in; returns the finished process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1,localhost")
    env.pop("DISCORD_TOKEN", None)
    env.pop("TELEGRAM_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input="".join(f"{line}\n" for line in lines),
        capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
    )


@pytest.fixture(scope="session")
def root(tmp_path_factory) -> Path:
    """Where the tiny model and its adapters are built, once per session (tests/tiny_model.py
    caches them), for every test module that needs them."""
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests talk to 127.0.0.1 only; anything else fails loudly instead of hoping for no network."""
    connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise OSError(f"a test tried to reach {address}: tests stay on 127.0.0.1")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


async def listen_on_loopback(app) -> tuple[Any, int]:
    """Start an aiohttp app on 127.0.0.1 at a free port: (runner to clean up, port)."""
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def frontend_running(app) -> AsyncIterator[tuple[Any, Any]]:
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


@pytest.fixture
def serve(tmp_path):
    """`async with serve(extra_toml) as router`: a real App's router on a tmp data dir."""
    from bot.app import App

    def serving(body: str = ""):
        return App(make_config(tmp_path, body), [], env={}).serving()

    return serving


def msg(text: str, chat: str = "c1", user: str = "u1", **kw) -> Incoming:
    return Incoming(platform="test", chat_id=chat, user_id=user, user_name=user, text=text, **kw)


async def say(router, text: str, **kw) -> RecordingSink:
    sink = RecordingSink()
    await router.handle(msg(text, **kw), sink)
    return sink


async def rows(router, sql: str, args: tuple = ()) -> list[tuple]:
    async with router.store.db.execute(sql, args) as cursor:
        return list(await cursor.fetchall())


class ChatSink:
    """A sink whose messages, and those of the sinks it makes with another(), land in one chat."""

    def __init__(self, chat: list[str]) -> None:
        self.chat = chat

    async def update(self, text: str) -> None:
        pass

    async def finish(self, text: str) -> list[str]:
        self.chat.append(text)
        return [f"m{len(self.chat)}"]

    def another(self) -> ChatSink:
        return ChatSink(self.chat)


SERVER_START_SECONDS = 90  # importing torch and transformers serve on two busy cores


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
