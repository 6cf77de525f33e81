"""The container's entry point, run as deploy/Dockerfile runs it but outside Docker (none here):
its ENTRYPOINT words as they stand, with deploy/config.toml as the image has it except for the
addresses (the data folder, the listener's port, the vLLM server and Telegram's API, all on
127.0.0.1 here)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.fake_telegram import FakeTelegram
from tests.harness import ROOT

DEPLOY = ROOT / "deploy"
IMAGE_CONFIG = "/app/config.toml"


def entrypoint(config: Path) -> list[str]:
    """The Dockerfile's ENTRYPOINT, the image's config path replaced by `config`."""
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    [words] = re.findall(r"^ENTRYPOINT (\[.*\])$", dockerfile, flags=re.M)
    command = [str(config) if word == IMAGE_CONFIG else word for word in json.loads(words)]
    assert command[0] == "eliza2llm" and str(config) in command
    return [str(Path(sys.executable).with_name("eliza2llm")), *command[1:]]


def image_config(tmp_path: Path, port: int, remote_port: int, telegram: str = "") -> Path:
    text = (DEPLOY / "config.toml").read_text(encoding="utf-8")
    text = re.sub(r'^listen = "0\.0\.0\.0:\d+"', f'listen = "127.0.0.1:{port}"', text, flags=re.M)
    text = re.sub(r'^base_url = "http://vllm:8000/v1"',
                  f'base_url = "http://127.0.0.1:{remote_port}/v1"', text, flags=re.M)
    text = re.sub(r'^data_dir = "/app/data"', f'data_dir = "{tmp_path / "data"}"', text,
                  flags=re.M)
    if telegram:
        text += f'\n[telegram]\nbase_url = "{telegram}"\npoll_timeout = 1.0\n'
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def environment(**tokens: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_TOKEN")}
    return env | {"PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost"} | tokens


def test_without_a_token_and_with_stdin_closed_it_exits_2_with_one_line(tmp_path,
                                                                         unused_tcp_port):
    config = image_config(tmp_path, unused_tcp_port, unused_tcp_port)
    done = subprocess.run(entrypoint(config), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, cwd=tmp_path, env=environment(), timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("eliza2llm: no platform to start: set TELEGRAM_TOKEN or "
                                  "DISCORD_TOKEN in the environment")


async def get(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def until_answers(url: str, process: asyncio.subprocess.Process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.returncode is None, "the bot ended"
        try:
            status, _ = await get(url)
            if status == 200:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
    raise AssertionError(f"{url} did not answer 200 within {seconds} s")


async def test_healthz_is_200_and_readyz_names_the_remote_engine_while_its_server_is_down(
    tmp_path, unused_tcp_port_factory
):
    port, down = unused_tcp_port_factory(), unused_tcp_port_factory()  # nothing listens on down
    fake = await FakeTelegram().start()
    config = image_config(tmp_path, port, down, telegram=fake.base_url)
    process = await asyncio.create_subprocess_exec(
        *entrypoint(config), cwd=tmp_path,
        env=environment(TELEGRAM_TOKEN=fake.token, VLLM_API_KEY="not-checked-by-anyone"),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        await until_answers(f"http://127.0.0.1:{port}/healthz", process, 60)
        status, ready = await get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and ready["default_engine"] == "remote"
        assert ready["why"] == "the default engine remote is unavailable"
        remote = ready["engines"]["remote"]
        assert remote["state"] == "unavailable" and f"127.0.0.1:{down}" in remote["detail"]
        assert ready["engines"]["eliza"]["state"] in ("idle", "ready")
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await fake.close()
    assert process.returncode == 0, stderr.decode()
    lines = [json.loads(line) for line in stderr.decode().splitlines()]  # --log-format json
    [started] = [line for line in lines if line["message"].startswith("eliza2llm started")]
    assert started["level"] == "INFO" and "frontends telegram;" in started["message"]
    assert f"on 127.0.0.1:{port}" in started["message"]


def test_platforms_is_every_platform_with_a_token_and_never_the_console():
    from bot.app import choose_frontends

    tokens = {"TELEGRAM_TOKEN": "x", "DISCORD_TOKEN": "y"}
    assert choose_frontends(["platforms"], {"TELEGRAM_TOKEN": "x"}, True) == ["telegram"]
    assert sorted(choose_frontends(["platforms"], tokens, True)) == ["discord", "telegram"]
    assert choose_frontends(["console", "platforms"], {"DISCORD_TOKEN": "y"}, False) == [
        "console", "discord"]
    assert choose_frontends([], {}, False) == ["console"]  # the piped console, as before
