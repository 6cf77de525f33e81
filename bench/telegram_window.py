"""How long a Telegram send stays unrecorded after Telegram answered it: the window in which a
bot killed outright would send that reply again after its restart (issue 30.4).

    python -m bench.telegram_window [--messages 50] [--people 5] [--rounds 3]

The real PTB client and the bot's Telegram frontend answer a burst (the kill test's: 50
messages from 5 people at once, the echo engine streaming) from the fake Bot API server, which
runs on a thread of its own (as Telegram is another machine, its work must not slow the bot's
loop). For every sendMessage, three moments on one clock (time.perf_counter):

  answered  the fake's handler returns the new message (its id exists: the send happened)
  read      the bot's HTTP client returns the answer's bytes to PTB
  recorded  the id is written to the sent journal (telegram_sent.py), the record that lets a
            restarted bot edit the message instead of sending it again

`read - answered` is the event loop's queue (the socket is ready; the task reading it waits for
its turn behind every other ready task) plus httpx; `recorded - read` is PTB's parsing of the
answer and the bot's own path back to the journal. The baseline is the same burst with
`[telegram] record_sends = "after"`: the id written after PTB has returned the Message, as
before this change, against the default "on_read" (the id written from the answer's bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from telegram.request import HTTPXRequest

from bot.app import App
from bot.frontends import telegram_sends, telegram_sent
from tests.conftest import frontend_running, make_config
from tests.fake_telegram import FakeTelegram, Person


class Clock:
    """The three moments of each send, by (chat id, message id), in time.monotonic() (one
    clock for every process of this machine: CLOCK_MONOTONIC)."""

    def __init__(self) -> None:
        self.answered: dict[tuple[int, int], float] = {}
        self.read: dict[tuple[int, int], float] = {}
        self.recorded: dict[tuple[int, int], float] = {}

    def windows(self) -> list[tuple[float, float]]:
        """(read - answered, recorded - read) in ms for each send seen at all three."""
        return [((self.read[k] - self.answered[k]) * 1e3, (self.recorded[k] - self.read[k]) * 1e3)
                for k in self.answered if k in self.read and k in self.recorded]


_now: dict[str, Any] = {}  # the burst being measured: its clock and update keys -> chat ids


def instrument(clock: Clock, journal_keys: dict[str, int]) -> None:
    """Note the moments of the sends of this burst (the wrappers go in once per process)."""
    _now.update(clock=clock, keys=journal_keys)
    if "wrapped" not in _now:
        _now["wrapped"] = True
        _wrap()


def _wrap() -> None:
    original_request = HTTPXRequest.do_request

    async def do_request(self: HTTPXRequest, url: str, *args: Any, **kwargs: Any) -> Any:
        code, payload = await original_request(self, url, *args, **kwargs)
        if url.endswith("/sendMessage") and code == 200:
            at = time.monotonic()
            result = json.loads(payload)["result"]
            _now["clock"].read.setdefault((result["chat"]["id"], result["message_id"]), at)
        return code, payload

    HTTPXRequest.do_request = do_request  # type: ignore[method-assign]
    original_write = telegram_sent.SentJournal.write

    def write(self: telegram_sent.SentJournal, key: str, ids: list[str]) -> None:
        original_write(self, key, ids)
        chat = _now["keys"].get(key)
        if chat is not None and ids:
            _now["clock"].recorded.setdefault((chat, int(ids[-1])), time.monotonic())

    telegram_sent.SentJournal.write = write  # type: ignore[method-assign]


async def serve_fake() -> None:
    """The fake Bot API in a process of its own (Telegram is another machine: its work must not
    take the bot's CPU time or GIL). Lines on stdin: "say MESSAGES PEOPLE", "times", "quit"."""
    fake = await FakeTelegram().start()
    answered: dict[str, float] = {}
    send = fake.api_sendMessage

    async def timed(chat_id: int, text: str, **options: Any) -> dict[str, Any]:
        message = await send(chat_id, text, **options)
        answered[f"{chat_id}:{message['message_id']}"] = time.monotonic()
        return message

    fake.api_sendMessage = timed  # type: ignore[method-assign]
    print(json.dumps({"base_url": fake.base_url, "token": fake.token}), flush=True)
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).split():
        if line[0] == "say":
            messages, people = int(line[1]), int(line[2])
            crowd = [Person(i, f"P{i}") for i in range(1, people + 1)]
            for n in range(messages):
                person = crowd[n % people]
                fake.say(fake.private(person), person, f"m{n} alpha beta gamma delta")
        elif line[0] == "times":
            print(json.dumps(answered), flush=True)
        else:
            break
    await fake.close()


async def burst(own_thread: bool, messages: int, people: int) -> list[tuple[float, float]]:
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.telegram_window", "--serve-fake",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert fake.stdin is not None and fake.stdout is not None
    where = json.loads(await fake.stdout.readline())
    clock = Clock()
    keys = {str(n + 1): (n % people) + 1 for n in range(messages)}  # update id -> chat id
    instrument(clock, keys)
    telegram_sends.OWN_THREAD = own_thread
    with tempfile.TemporaryDirectory() as tmp:
        body = ('[policy]\nrate_per_minute = 0\n[engines.echo]\ndelay = 0.01\n[telegram]\n'
                f'base_url = "{where["base_url"]}"\npoll_timeout = 0.5\nedit_interval = 0.0\n')
        app = App(make_config(Path(tmp), body), ["telegram"],
                  env={"TELEGRAM_TOKEN": where["token"]})
        async with frontend_running(app) as (router, _):
            fake.stdin.write(f"say {messages} {people}\n".encode())
            deadline = time.monotonic() + 120
            while len(clock.recorded) < messages and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await router.settle(30)
    fake.stdin.write(b"times\n")
    answered = json.loads(await fake.stdout.readline())
    fake.stdin.write(b"quit\n")
    await fake.wait()
    for key, at in answered.items():
        chat, message = key.split(":")
        clock.answered[(int(chat), int(message))] = at
    return clock.windows()


def describe(name: str, windows: list[tuple[float, float]]) -> float:
    totals = sorted(a + b for a, b in windows)
    queue = sorted(a for a, _ in windows)
    path = sorted(b for _, b in windows)

    def q(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))]

    print(f"{name}: {len(windows)} sends; window ms median {statistics.median(totals):.2f}"
          f" p90 {q(totals, 0.9):.2f} max {totals[-1]:.2f} sum {sum(totals):.1f}"
          f" | loop+httpx median {statistics.median(queue):.2f} p90 {q(queue, 0.9):.2f}"
          f" | after the read median {statistics.median(path):.2f} p90 {q(path, 0.9):.2f}")
    return sum(totals)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--switch-interval", type=float, default=0.0,
                        help="sys.setswitchinterval for the bot's process (default: Python's)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        return await serve_fake()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    sums: dict[str, list[float]] = {"main loop": [], "own thread": []}
    for _ in range(args.rounds):
        for name in sums:
            windows = await burst(name == "own thread", args.messages, args.people)
            sums[name].append(describe(name, windows))
    base, new = statistics.median(sums["main loop"]), statistics.median(sums["own thread"])
    print(f"summed window per burst, median of {args.rounds}: sends on the main loop "
          f"{base:.1f} ms, on their own thread {new:.1f} ms: ratio {new / base:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
