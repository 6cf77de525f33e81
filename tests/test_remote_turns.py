"""The remote engine's request queue (engines/remote/turns.py): at most max_concurrent requests
at the server, chats let in by turns; then the engine against the fake vLLM server."""

from __future__ import annotations

import asyncio
import contextlib

from engines.base import Conversation
from engines.remote.turns import FairQueue
from tests.fake_openai import FakeOpenAI
from tests.remote_chat import remote_chat


async def test_waiting_chats_are_let_in_by_turns_and_cancelled_waiters_leave():
    queue, started = FairQueue(1), []
    release: dict[str, asyncio.Event] = {}

    async def request(chat: str, name: str) -> None:
        release[name] = asyncio.Event()
        async with queue.turn(chat):
            started.append(name)
            await release[name].wait()

    tasks = [asyncio.create_task(request(chat, name)) for chat, name in
             [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("c", "c1"), ("d", "d1")]]
    await asyncio.sleep(0)
    assert started == ["a1"] and queue.running == 1
    tasks[-1].cancel()  # d gives up waiting: it leaves no trace
    for name in ["a1", "b1", "c1", "a2"]:
        release[name].set()
        await asyncio.sleep(0.01)
    # a had its turn: b and c, never served, go before a's second request
    assert started == ["a1", "b1", "c1", "a2", "a3"]
    release["a3"].set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert queue.running == 0 and not queue._waiting


async def test_the_last_place_is_kept_for_a_chat_with_nothing_running():
    queue, started = FairQueue(3), []
    hold = asyncio.Event()

    async def request(chat: str, name: str) -> None:
        async with queue.turn(chat):
            started.append(name)
            await hold.wait()

    burst = [asyncio.create_task(request("a", f"a{i}")) for i in range(5)]
    await asyncio.sleep(0)
    assert started == ["a0", "a1"]  # the third place waits for someone else
    other = asyncio.create_task(request("b", "b0"))
    await asyncio.sleep(0)
    assert started == ["a0", "a1", "b0"]  # b starts at once, before a's queued three
    hold.set()
    await asyncio.gather(*burst, other)
    assert sorted(started) == ["a0", "a1", "a2", "a3", "a4", "b0"]


async def test_a_chats_burst_waits_behind_its_own_requests_at_the_server(serve):
    fake = await FakeOpenAI(delay=0.02).start()
    try:
        async with remote_chat(serve, fake, "max_concurrent = 2\n") as router:
            engine = await router.engines.get("remote")
            finished: list[str] = []

            async def ask(chat: str, text: str) -> None:
                async with contextlib.aclosing(engine.reply(Conversation(chat, text))) as s:
                    assert "".join([d async for d in s]).endswith(text)
                finished.append(chat)

            burst = [asyncio.create_task(ask("a", f"one two three four {i}")) for i in range(4)]
            await fake.streaming.wait()
            await asyncio.gather(*burst, ask("b", "five six"))
            assert finished.index("b") <= 1, finished
            assert engine.queue.running == 0
    finally:
        await fake.stop()
