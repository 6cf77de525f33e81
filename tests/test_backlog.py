"""A chat's turns and its bounded backlog ([bot] max_backlog): order kept, the oldest waiting
messages let go past the bound, one line telling how many, commands and votes never let go."""

from __future__ import annotations

import asyncio

from bot.i18n import t
from bot.turns import Turns
from tests.harness import ChatSink, say


async def test_turns_keep_order_and_let_the_oldest_waiting_go_past_the_limit():
    turns, done, told = Turns(limit=3), [], {}

    async def message(n: int, may_let_go: bool = True) -> None:
        async with turns.turn("chat", may_let_go) as turn:
            if turn.let_go:
                return
            told[n] = turn.tell
            await asyncio.sleep(0.01)
            done.append(n)

    first = asyncio.create_task(message(0))
    await asyncio.sleep(0)  # it holds the turn
    later = [asyncio.create_task(message(n, may_let_go=n != 2)) for n in range(1, 11)]
    await asyncio.gather(first, *later)
    # 2 (a command) is never let go; of the rest, only the newest three waited on
    assert done == [0, 2, 8, 9, 10]
    assert told == {0: 0, 2: 0, 8: 6, 9: 0, 10: 0}
    assert turns.waiting("chat") == 0


async def test_a_cancelled_waiter_leaves_the_line_and_the_turn_passes_on():
    turns, done = Turns(), []

    async def hold(n: int, seconds: float) -> None:
        async with turns.turn("chat"):
            await asyncio.sleep(seconds)
            done.append(n)

    tasks = [asyncio.create_task(hold(n, 0.02)) for n in range(3)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert done == [0, 2]


async def test_waiters_cancelled_just_as_the_turn_passes_are_skipped():
    turns, done, waiters = Turns(limit=5), [], []

    async def waiter(n: int) -> None:
        async with turns.turn("chat", may_let_go=True):
            done.append(n)

    async def holder() -> None:
        async with turns.turn("chat"):
            waiters.extend(asyncio.create_task(waiter(n)) for n in range(1, 4))
            await asyncio.sleep(0.01)
            waiters[0].cancel()  # as a drain does: their tasks hear it after the turn passed
            waiters[1].cancel()

    await holder()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert done == [3] and turns.waiting("chat") == 0


async def test_a_flooded_chat_answers_its_newest_and_says_once_how_many_it_let_go(serve):
    body = "max_backlog = 2\n[engines.echo]\ndelay = 0.02\n"
    async with serve(body) as router:
        sent: list[str] = []

        async def say_in_group(text: str) -> None:
            await say(router, text, "g", "u", is_group=True, sink=ChatSink(sent))

        first = asyncio.create_task(say_in_group("m0"))
        await asyncio.sleep(0.01)
        rest = [asyncio.create_task(say_in_group(f"m{n}")) for n in range(1, 8)]
        # a command waits its turn, never let go
        rest.append(asyncio.create_task(say_in_group("/help")))
        await asyncio.gather(first, *rest)
        async with router.store.db.execute(
                "SELECT text FROM messages WHERE role = 'user' ORDER BY id") as cursor:
            stored = [text for (text,) in await cursor.fetchall()]
    let_go = t("en", "backlog_let_go", count=5)  # m1..m5: m6 and m7 were the newest two
    assert sent[:4] == ["echo: m0", let_go, "echo: m6", "echo: m7"]
    assert len(sent) == 5 and "/help" in sent[4]  # the command in its turn, after them
    assert not any(f"echo: m{n}" in sent for n in range(1, 6))
    assert sorted(stored) == sorted(f"m{n}" for n in range(8))  # let go, but in the history


async def test_a_long_flood_is_told_at_once_then_once_a_minute_and_when_the_line_clears():
    now = [0.0]
    turns, told, answered = Turns(limit=2, clock=lambda: now[0]), [], []
    holds = {n: asyncio.Event() for n in range(10)}
    tasks: list[asyncio.Task] = []

    async def message(n: int) -> None:
        async with turns.turn("chat", True) as turn:
            if turn.let_go:
                return
            if turn.tell:
                told.append((n, turn.tell))
            answered.append(n)
            await holds[n].wait()

    async def arrive(*numbers: int) -> None:
        tasks.extend(asyncio.create_task(message(n)) for n in numbers)
        await asyncio.sleep(0)

    async def finish(n: int) -> None:
        holds[n].set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    await arrive(0, 1, 2, 3, 4)  # 0 answers; 1 and 2 let go; 3 and 4 wait
    await finish(0)
    assert told == [(3, 2)]  # the first time: at once, though 4 still waits
    await arrive(5, 6)  # 4 let go
    await finish(3)
    assert answered[-1] == 5 and told == [(3, 2)]  # 6 waits, told a moment ago: not yet
    now[0] = 61.0
    await arrive(7, 8)  # 6 let go
    await finish(5)
    assert answered[-1] == 7 and told == [(3, 2), (7, 2)]  # a minute on: told of 4 and 6
    await arrive(9)  # the line: 8, 9
    for n in (7, 8, 9):
        holds[n].set()
    await asyncio.gather(*tasks)
    assert answered == [0, 3, 5, 7, 8, 9] and told == [(3, 2), (7, 2)]
