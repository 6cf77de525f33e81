"""The real-model tier, remote: the remote engine against `transformers serve` serving the real
model folder on this CPU, configured as the README's "Without a GPU" shows, streaming a reply
through the bot's router."""

from __future__ import annotations

import pytest

from tests.harness import transformers_serve
from tests.remote_chat import remote_toml, say
from tests.smol_model import smol_dir

pytestmark = pytest.mark.smol


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base_url, model) of `transformers serve` running the real model; stopped at the end."""
    model, log = smol_dir(), tmp_path_factory.mktemp("serve")
    with transformers_serve(model, log) as base_url:
        yield base_url, str(model)


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
