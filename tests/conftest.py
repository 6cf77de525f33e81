"""The tests' fixtures: no network, a real SQLite store per test, a sink that records. What the
tests share beyond fixtures is in tests/harness.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from engines import corpora

os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub: never download

from tests.harness import RecordingSink, make_config

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


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


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def serve(tmp_path):
    """`async with serve(extra_toml) as router`: a real App's router on a tmp data dir."""
    from bot.app import App

    def serving(body: str = ""):
        return App(make_config(tmp_path, body), [], env={}).serving()

    return serving


@pytest.fixture
def table(tmp_path, monkeypatch):
    """A corpora table whose German corpus is "installed" once tmp_path/fortunes exists."""
    path = tmp_path / "corpora.toml"
    path.write_text(f"""
[en]
[de]
[[de.shipped]]
name = "lecture excerpt"
file = "transformer/data/tiny_de.txt"
[[de.installed]]
name = "fortunes-xx"
install = "apt-get install fortunes-xx"
folders = ["{tmp_path / 'nowhere'}", "{tmp_path / 'fortunes'}"]
skip = ["bilder"]
""", encoding="utf-8")
    monkeypatch.setattr(corpora, "SOURCES_FILE", path)
    return tmp_path
