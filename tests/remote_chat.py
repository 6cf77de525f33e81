"""Chats answered by the remote engine against the fake OpenAI-compatible server
(tests/fake_openai.py), and the adapter steps the remote tests share."""

from __future__ import annotations

import contextlib
import functools

from bot.store import Adapter
from tests import harness
from tests.fake_openai import FakeOpenAI


def remote_toml(url: str, extra: str = "") -> str:
    """[engines.remote] for the fake at `url`: short timeouts, one retry, then `extra` keys."""
    defaults = {"timeout": "2.0", "max_retries": "1"}
    for line in extra.splitlines():
        defaults.pop(line.split("=")[0].strip(), None)
    keys = "".join(f"{key} = {value}\n" for key, value in defaults.items())
    return f'[engines.remote]\nbase_url = "{url}"\n{keys}{extra}'


# The remote tests speak as the console's operator: a bot admin, shown an error's details.
say = functools.partial(harness.say, user="me", platform="console")


@contextlib.asynccontextmanager
async def remote_chat(serve, fake: FakeOpenAI, extra: str = "", chats: tuple = ("c1",)):
    """A router whose `chats` talk to the remote engine."""
    async with serve(remote_toml(fake.url, extra)) as router:
        for chat in chats:
            assert "remote" in (await say(router, "/engine remote", chat)).final
        yield router


async def add_adapters(router, *ids: str) -> None:
    """Adapter folders under the bot's adapters/ and their rows, as a finished job leaves them."""
    for adapter_id in ids:
        folder = router.config.adapters_dir / adapter_id
        folder.mkdir(parents=True, exist_ok=True)
        await router.store.add_adapter(Adapter(adapter_id, "tiny", str(folder), "candidate", {}))


async def promote(router, adapter_id: str) -> str:
    """What a job's promotion comes to: the store, then the engines (bot/adapters.py)."""
    return (await router.services.adapters.promote(adapter_id, "a test")).version


async def last_version(router, chat: str = "c1") -> str:
    return (await router.store.last_reply(await router.store.chat("console", chat))).engine_version
