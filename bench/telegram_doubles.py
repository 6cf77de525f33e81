"""Telegram kill -9 in a burst, counted: how many replies are sent twice after the restart.

    python -m bench.telegram_doubles [--runs 10] [--messages 50]

tests/test_telegram_restarts.py's burst (50 messages from 5 people, the echo engine streaming),
but the kill lands at a random moment of the burst (8 to 20 replies finished, then 0-300 ms),
not only where every send has been answered: a kill between Telegram carrying out a send and
the bot recording the new message's id makes the restarted bot send that reply again. Each run
kills the bot process, starts it again on the same data and waits until every message is
answered; a reply shown twice is a double. The baseline is the same runs with sendMessage on
the bot's event loop (bot.frontends.telegram_sends.OWN_THREAD = False), as before issue 30.4.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tests.conftest import ROOT, write_config
from tests.fake_telegram import FakeTelegram
from tests.test_telegram_restarts import PEOPLE, stop, texts

ON_LOOP = ("import runpy, bot.frontends.telegram_sends as s; s.OWN_THREAD = False; "
           "runpy.run_module('bot', run_name='__main__', alter_sys=True)")


async def start(fake: FakeTelegram, folder: Path, own_thread: bool) -> asyncio.subprocess.Process:
    config = write_config(folder / "mine.toml", '[bot]\ndefault_engine = "echo"\n'
                          '[engines.echo]\ndelay = 0.01\n[policy]\nrate_per_minute = 0\n'
                          f'[telegram]\nbase_url = "{fake.base_url}"\npoll_timeout = 0.5\n'
                          'edit_interval = 0.0\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT), TELEGRAM_TOKEN=fake.token,
               NO_PROXY="127.0.0.1,localhost")
    program = ["-m", "bot"] if own_thread else ["-c", ON_LOOP]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *program, "telegram", "--config", str(config),
        "--data-dir", str(folder / "data"), cwd=folder, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    polls = len(fake.calls_to("getUpdates"))
    await fake.wait_for(lambda: len(fake.calls_to("getUpdates")) > polls, "polling", 30)
    return process


async def one_run(own_thread: bool, messages: int, rng: random.Random) -> tuple[int, int]:
    """(replies shown twice, messages never answered) after a kill -9 and a restart."""
    fake = await FakeTelegram().start()
    with tempfile.TemporaryDirectory() as tmp:
        process = await start(fake, Path(tmp), own_thread)
        try:
            sent = [f"m{n} alpha beta gamma delta" for n in range(messages)]
            for n, text in enumerate(sent):
                person = PEOPLE[n % len(PEOPLE)]
                fake.say(fake.private(person), person, text)
            finished = rng.randint(8, 20)
            await fake.wait_for(lambda: sum(x.endswith("delta") for x in texts(fake))
                                >= finished, "some replies", 60)
            await asyncio.sleep(rng.uniform(0, 0.3))
            process.kill()
            await process.wait()
            process = await start(fake, Path(tmp), own_thread)
            expected = {f"echo: {x}" for x in sent}
            await fake.wait_for(lambda: expected <= set(texts(fake)), "all answered", 90)
            await stop(process)
        finally:
            if process.returncode is None:
                process.kill()
            await fake.close()
    shown = Counter(x for x in texts(fake) if x.startswith("echo"))
    return sum(n - 1 for n in shown.values() if n > 1), len(expected - set(shown))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["own thread", "main loop"], default=None)
    args = parser.parse_args()
    results = {}
    for name in ("main loop", "own thread"):
        if args.only and name != args.only:
            continue
        rng = random.Random(args.seed)  # the same kill moments for both
        runs = [await one_run(name == "own thread", args.messages, rng) for _ in range(args.runs)]
        doubled = sum(1 for d, _ in runs if d)
        results[name] = doubled
        print(f"{name}: {doubled} of {args.runs} runs sent a reply twice; doubles per run "
              f"{[d for d, _ in runs]}; unanswered {sum(u for _, u in runs)}", flush=True)
    if len(results) == 2:
        print(f"runs with a double: main loop {results['main loop']}, own thread "
              f"{results['own thread']} (of {args.runs} each)")


if __name__ == "__main__":
    asyncio.run(main())
