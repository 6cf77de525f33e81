"""A hub model's first download, against a fake hub on 127.0.0.1: /engines shows how many MB of
how many have arrived instead of "loading", and each way it can fail is one line with its fix."""

from __future__ import annotations

import asyncio
import errno
import re

import pytest

from tests.fake_hub import FakeHub
from tests.harness import heavy, say
from tests.tiny_model import tiny_model_dir

ME = {"user": "me", "platform": "console"}  # the console's operator

pytest.importorskip("torch", reason="the transformer needs the ml extra")

REPO = "test-org/tiny-chat"
DOWNLOADING = re.compile(rf"• transformer: loading \(downloading {REPO}: (\d+) of (\d+) MB\)")
CONFIG = f'[engines.transformer]\nmodel = "{REPO}"\ndevice = "cpu"\nthreads = 1\n'


@pytest.fixture
async def hub(root, tmp_path, monkeypatch):
    """The fake hub serving the tiny model, and the hub client pointed at it: online, with an
    empty cache, reading 64 KB at a time (the client's 10 MB would be the whole tiny model)."""
    from huggingface_hub import constants

    server = await FakeHub(REPO, tiny_model_dir(root)).start()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    point_at(monkeypatch, server.url)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 600)  # held midway, not timed out
    yield server
    await server.stop()


def point_at(monkeypatch, url: str) -> None:
    """HF_ENDPOINT, as the hub client read it when it was imported."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        url + "/{repo_id}/resolve/{revision}/{filename}")


def engines_line(answer: str) -> str:
    return next(line for line in answer.splitlines() if line.startswith("• transformer"))


@heavy  # the model loads after its download: torch on busy cores
async def test_engines_shows_the_downloads_megabytes_then_the_model_serves(hub, serve):
    hub.hold = asyncio.Event()
    total = sum(len(data) for data in hub.files.values()) / 1e6
    async with serve(CONFIG) as router:
        switching = asyncio.create_task(say(router, "/engine transformer", **ME))
        await asyncio.wait_for(hub.halfway.wait(), 60)
        lines = []
        for _ in range(1000):  # the client reports the first half as it writes it
            # from another chat: this one waits for its /engine until the model is loaded
            lines.append(engines_line((await say(router, "/engines", chat="c2", **ME)).final))
            if (shown := DOWNLOADING.fullmatch(lines[-1])) and int(shown[1]) > 0:
                break
            await asyncio.sleep(0.01)
        hub.hold.set()
        switched = (await asyncio.wait_for(switching, 120)).final
        ready = engines_line((await say(router, "/engines", **ME)).final)
    assert shown, lines[-3:]
    assert 0 < int(shown[1]) < int(shown[2]) == round(total)
    assert set(lines) - {line for line in lines if DOWNLOADING.fullmatch(line)} <= {
        "• transformer: loading"}  # before the first byte; never anything else
    assert switched == "This chat now talks to transformer." and "ready" in ready


async def test_a_gated_model_is_one_line_saying_to_accept_its_terms_and_log_in(hub, serve):
    hub.gated = True
    async with serve(CONFIG) as router:
        answer = (await say(router, "/engine transformer", **ME)).final
        line = engines_line((await say(router, "/engines", **ME)).final)
    reason = f"model {REPO} is gated: accept its terms at https://huggingface.co/{REPO}"
    assert reason in answer and "hf auth login" in answer and "\n" not in answer.strip()
    assert reason in line


async def test_no_network_is_one_line_saying_so_and_what_to_run_instead(hub, serve, monkeypatch):
    await hub.stop()  # nothing listens there any more
    async with serve(CONFIG) as router:
        answer = (await say(router, "/engine transformer", **ME)).final
    assert f"model {REPO} is not on this machine and could not be downloaded" in answer
    assert f"`hf download {REPO}` where there is network" in answer and "\n" not in answer


def test_a_full_disk_says_where_it_needs_room():
    from engines.transformer.download import explain

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as full:
            raise RuntimeError("download failed") from full
    except RuntimeError as exc:
        line = explain(REPO, exc)
    assert line.startswith(f"the disk is full: downloading {REPO} into ")
    assert "HF_HOME" in line and "\n" not in line
