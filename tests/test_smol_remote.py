"""The real-model tier, remote: the remote engine against `transformers serve` serving the real
model folder on this CPU, configured as the README's "Without a GPU" shows, streaming a reply
through the bot's router."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import wait_healthy
from tests.remote_chat import remote_toml, say
from tests.smol_model import smol_dir

pytestmark = pytest.mark.smol


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base_url, model) of `transformers serve` running the real model; stopped at the end."""
    model, log = smol_dir(), tmp_path_factory.mktemp("serve")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (log / "hub").mkdir()  # /v1/models scans the hub cache: an empty one lists nothing
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_CACHE=str(log / "hub"), NO_PROXY="127.0.0.1,localhost")
    cli = Path(sys.executable).with_name("transformers")
    server = subprocess.Popen(
        [str(cli), "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--device", "cpu", "--dtype", "float32"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(log / "serve.log", "wb"))  # noqa: SIM115
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", server, log / "serve.log")
        yield f"http://127.0.0.1:{port}/v1", str(model)
    finally:
        server.terminate()
        server.wait(timeout=30)


async def test_the_remote_engine_streams_the_real_models_reply_from_transformers_serve(
        served, serve):
    base_url, model = served
    keys = (f'model = "{model}"\nvllm_sampling = false\ntemperature = 0\nmax_tokens = 24\n'
            "timeout = 60.0\n")
    async with serve(remote_toml(base_url, keys)) as router:
        assert "remote" in (await say(router, "/engine remote")).final
        sink = await say(router, "What is the capital of France?")
        why = (await say(router, "/why")).final
    assert "Paris" in sink.final, sink.final
    assert len(sink.updates) > 2 and sink.updates[-1] == sink.final  # it grew as it streamed
    assert all(b.startswith(a) for a, b in zip(sink.updates, sink.updates[1:], strict=False))
    assert f"server: {base_url}" in why and "tokens_out:" in why
