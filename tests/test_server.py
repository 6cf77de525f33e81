"""[server] listen: /healthz and /metrics served by a running App, read over real HTTP."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App
from bot.config import ConfigError, ServerOptions, load_config, parse_table
from bot.events import Incoming, Reaction
from bot.frontends import FRONTENDS
from engines.base import EngineUnavailable
from engines.registry import BUILTIN
from tests.harness import RecordingSink, make_config, write_config, write_lock_held

LISTEN = '[server]\nlisten = "127.0.0.1:0"\n'  # port 0: any free one; the app says which


async def get(app: App, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{app.server.bound_port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def metric(app: App, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when it has not been counted yet)."""
    app.server.exposition.max_age = 0  # each read sees what came just before it
    _, text = await get(app, "/metrics")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_healthz_and_metrics_follow_messages_votes_and_shutdown(tmp_path):
    app = App(make_config(tmp_path, LISTEN), [], env={})
    async with app.serving() as router:
        await router.engines.get("echo")  # the default engine loaded: nothing is starting
        status, body = await get(app, "/healthz")
        assert status == 200, body
        assert '"store": "ok"' in body and '"frontends": "0/0 started"' in body
        status, body = await get(app, "/readyz")
        assert status == 200 and json.loads(body)["engines"]["echo"] == {
            "state": "ready", "version": "echo-1"}

        before = {
            "messages": await metric(app, "eliza2llm_messages_received_total", platform="test"),
            "replies": await metric(app, "eliza2llm_replies_total", engine="echo", outcome="ok"),
            "latency": await metric(app, "eliza2llm_reply_seconds_count", engine="echo"),
            "votes": await metric(app, "eliza2llm_votes_stored_total", value="up"),
        }
        sink = RecordingSink()
        await router.handle(Incoming("test", "c1", "u1", "hello"), sink)
        assert sink.final == "echo: hello"
        assert await router.react(Reaction("test", "c1", "u2", f"sent-{id(sink)}", "👍"))
        after = {
            "messages": await metric(app, "eliza2llm_messages_received_total", platform="test"),
            "replies": await metric(app, "eliza2llm_replies_total", engine="echo", outcome="ok"),
            "latency": await metric(app, "eliza2llm_reply_seconds_count", engine="echo"),
            "votes": await metric(app, "eliza2llm_votes_stored_total", value="up"),
        }
        assert {k: after[k] - before[k] for k in before} == {
            "messages": 1, "replies": 1, "latency": 1, "votes": 1}

        await router.drain(1)  # what shutdown does first: nothing new is accepted
        status, body = await get(app, "/healthz")
        assert status == 503
        assert '"accepting": false' in body


async def test_an_engine_that_cannot_start_is_not_ready_but_the_bot_is_alive(tmp_path):
    path = write_config(tmp_path / "config.toml", '[bot]\ndefault_engine = "unloadable"\n' + LISTEN)
    config = load_config(path, FRONTENDS, BUILTIN, data_dir=str(tmp_path / "data"))
    app = App(config, [], env={})
    async with app.serving() as router:
        with pytest.raises(EngineUnavailable):
            await router.engines.get("unloadable")
        status, body = await get(app, "/healthz")
        assert status == 200, body  # the other engines answer: no restart would help
        status, body = await get(app, "/readyz")
        ready = json.loads(body)
        assert status == 503 and ready["why"] == "the default engine unloadable is unavailable"
        assert ready["engines"]["unloadable"] == {"state": "unavailable",
                                                  "detail": "weights not found: set "
                                                  "[engines.unloadable] model"}
        assert ready["engines"]["eliza"] == {"state": "idle"}


async def test_healthz_reports_a_store_that_cannot_write_and_recovers(tmp_path, caplog):
    app = App(make_config(tmp_path, LISTEN), [], env={})
    async with app.serving():
        assert app.writes is not None
        app.writes.every, app.writes.grace = 0.05, 0.3
        assert (await get(app, "/healthz"))[0] == 200
        async with write_lock_held(app.config.db_file):  # another process's writer
            await asyncio.sleep(0.8)
            status, body = await get(app, "/healthz")
            assert status == 503 and json.loads(body)["store"].startswith("cannot write for ")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if (await get(app, "/healthz"))[0] == 200:
                break
        assert (await get(app, "/healthz"))[0] == 200


async def test_no_listener_by_default(tmp_path):
    app = App(make_config(tmp_path), [], env={})
    async with app.serving():
        assert app.server is None


@pytest.mark.parametrize("listen", ["9108", "localhost", ":9108", "host:99999"])
def test_a_bad_address_is_a_config_error_naming_the_key(listen):
    with pytest.raises(ConfigError, match=r"^\[server\] listen: expected \"host:port\""):
        parse_table("server", ServerOptions, {"listen": listen})


async def test_threads_take_short_turns_at_the_gil_while_the_bot_serves(tmp_path):
    """The worker thread and the event loop are not kept waiting 5 ms at each of their many
    GIL turns by a pure-Python thread (bot/app.py GIL_TURN); the setting is given back."""
    from bot.app import GIL_TURN

    before = sys.getswitchinterval()
    async with App(make_config(tmp_path), [], env={}).serving():
        assert sys.getswitchinterval() == pytest.approx(GIL_TURN) and before > GIL_TURN
    assert sys.getswitchinterval() == before
