"""An active adapter that cannot be loaded never takes the transformer down: the base model
answers (word for word what it says without any adapter), one log line names the adapter and
why, the store marks it broken (/adapters shows it; jobs and the guard see no active adapter)
and the next message of a bot admin is followed by a notice. The tiny model, through a real
App's router; the adapter deleted, its weights cut short, its config garbage, its folder
emptied."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from bot.store import Adapter
from tests.harness import ChatSink, say
from tests.tiny_model import adapter_dir, tiny_model_dir

ADAPTER = "ft1-broken"
ASK = "hello there"


def body(root: Path) -> str:
    return (f'admins = ["test:admin"]\n[engines.transformer]\nmodel = "{tiny_model_dir(root)}"'
            '\nthreads = 1\nmax_new_tokens = 6\ntemperature = 0.0\n')


def deleted(folder: Path) -> None:
    shutil.rmtree(folder)


def truncated_weights(folder: Path) -> None:
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def bad_config(folder: Path) -> None:  # JSON, but nothing PEFT can build an adapter from
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": "four",'
                                                ' "target_modules": 7}')


def emptied(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


async def chat_after(router, text: str, user: str = "admin", chat: str = "c1") -> list[str]:
    """What the chat shows after `user` says `text`: one message, or more (notices)."""
    return (await say(router, text, chat, user, sink=ChatSink())).chat


_base_replies: list[str] = []  # the greedy reply without an adapter, asked once


async def base_reply(serve, root: Path) -> str:
    if not _base_replies:
        async with serve(body(root)) as router:
            await chat_after(router, "/engine transformer")
            _base_replies.append((await chat_after(router, ASK))[0])
    return _base_replies[0]


@pytest.mark.parametrize("breaking", [deleted, truncated_weights, bad_config, emptied])
async def test_a_broken_active_adapter_leaves_the_base_model_serving(
        serve, root, tmp_path, caplog, breaking):
    expected = await base_reply(serve, root)
    async with serve(body(root)) as router:
        folder = router.config.adapters_dir / ADAPTER
        shutil.copytree(adapter_dir(root, "lora-a", seed=1), folder)
        await router.store.add_adapter(Adapter(ADAPTER, "tiny", str(folder), "candidate", {}))
        await router.store.promote(ADAPTER)
        breaking(folder)
        caplog.set_level(logging.WARNING)
        assert (await chat_after(router, "/engine transformer", user="someone"))[0].startswith(
            "This chat now")  # not "the transformer engine is unavailable"
        assert await chat_after(router, ASK, user="someone") == [expected]
        await chat_after(router, "/engine transformer", user="someone", chat="c2")
        assert await chat_after(router, ASK, user="someone", chat="c2") == [expected]  # tried once
        said = [r.getMessage() for r in caplog.records if ADAPTER in r.getMessage()]
        assert len(said) == 1 and "cannot be loaded" in said[0], said
        [stored] = await router.store.adapters()
        assert stored.status == "active" and stored.broken
        assert await router.store.active_adapter() == ""  # what jobs train on: the base model
        assert await router.services.guard.standing() is None  # nothing for the guard to judge
        shown = await chat_after(router, "/adapters")  # an admin: the answer, then the notice once
        assert f"{ADAPTER}: active but BROKEN" in shown[0]
        assert len(shown) == 2 and f"Adapter {ADAPTER} cannot be loaded" in shown[1]
        assert len(await chat_after(router, "/adapters")) == 1  # told once
        async with router.store.db.execute(
                "SELECT engine_version FROM messages WHERE role = 'bot'") as cursor:
            assert {row[0] for row in await cursor.fetchall()} == {"base"}
