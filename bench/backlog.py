"""One flooded group: 1,000 messages in a minute, answered at the pace Telegram allows a group.

    python -m bench.backlog [--messages 1000] [--seconds 60] [--patience 150]
                            [--engines eliza,ngram] [--backlog 20]

The real Telegram frontend talks to the tests' fake Bot API on 127.0.0.1, which, like
Telegram, refuses a group more than 20 messages (edits included) a minute; the bot paces itself
below that ([telegram] group_messages). 20 people mention the bot in one group, `messages`
times within `seconds`. Each engine runs twice in this process: with [bot] max_backlog =
`backlog` and, as the baseline, with no bound (max_backlog = 0: every message waits for an
answer of its own, as before issue 30). Printed per run: the seconds until every message was
answered or let go (or how far it got by `patience`), replies and "let go" lines sent,
"typing…" calls per reply (issue 30's goal: at most 1.2), and the peak growth of the
process's memory (RSS) from the moment the flood starts (the engine loaded, the bot running).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY

from bot.app import App
from bot.config import load_config
from bot.frontends import FRONTENDS
from bot.i18n import t
from engines.ngram.engine import NgramEngine
from engines.registry import BUILTIN
from tests.conftest import write_config
from tests.fake_telegram import FakeTelegram, Person

GOAL_TYPING_PER_REPLY = 1.2
PEOPLE = [Person(100 + n, f"P{n}") for n in range(20)]
TOPICS = ["my mother", "the exam", "dreams", "computers", "the weather", "my job", "music"]


@dataclass
class Run:
    engine: str
    backlog: int
    seconds: float | None  # until all answered or let go; None: not within patience
    replies: int
    told: int  # "let go" lines
    let_go: int
    typing: int
    rss_mib: float

    def line(self, messages: int) -> str:
        done = f"{self.seconds:6.1f} s" if self.seconds is not None else \
            f"not in time ({self.replies + self.let_go}/{messages})"
        per_reply = self.typing / max(self.replies, 1)
        return (f"{self.engine:6} max_backlog={self.backlog:<3} all handled: {done:>22}  "
                f"replies {self.replies:4}  let go {self.let_go:4} in {self.told} line(s)  "
                f"typing/reply {per_reply:5.2f}  memory +{self.rss_mib:5.1f} MiB")


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def let_go_so_far() -> float:
    return REGISTRY.get_sample_value("eliza2llm_backlog_let_go_total",
                                     {"platform": "telegram"}) or 0.0


async def one_run(engine: str, backlog: int, args: argparse.Namespace, folder: Path) -> Run:
    fake = await FakeTelegram(group_limit=20, window=60.0).start()
    body = (f'[bot]\ndefault_engine = "{engine}"\nmax_backlog = {backlog}\ndrain_seconds = 1\n'
            f'[policy]\nrate_per_minute = 0\n[telegram]\nbase_url = "{fake.base_url}"\n'
            'poll_timeout = 0.5\n')
    config = load_config(write_config(folder / "config.toml", body), FRONTENDS, BUILTIN,
                         data_dir=str(folder / "data"))
    app = App(config, ["telegram"], env={"TELEGRAM_TOKEN": fake.token})
    group, told_text = fake.group(), t("en", "backlog_let_go", count=0).split("0", 1)[1]
    let_go_before, rss_peak = let_go_so_far(), 0.0
    try:
        async with app.serving() as router:
            loaded = await router.engines.get(engine)
            if isinstance(loaded, NgramEngine):
                await loaded.settle()  # its models estimated before the flood, not during
            frontend = app.frontends[0]
            await frontend.start(router)
            rss_before = rss_mib()  # the engine loaded: what the flood itself costs
            started = time.monotonic()
            sending = asyncio.create_task(flood(fake, group, args))
            seconds = None
            while time.monotonic() - started < args.patience:
                await asyncio.sleep(0.5)
                rss_peak = max(rss_peak, rss_mib() - rss_before)
                sent = [m.get("text", "") for m in fake.sent(group)]
                told = sum(told_text in x for x in sent)
                handled = len(sent) - told + let_go_so_far() - let_go_before
                if sending.done() and handled >= args.messages:
                    seconds = time.monotonic() - started
                    break
            sending.cancel()
            typing = len(fake.calls_to("sendChatAction"))
            await router.drain(0.5)
            await frontend.stop()
    finally:
        await fake.close()
    return Run(engine, backlog, seconds, len(sent) - told, told,
               int(let_go_so_far() - let_go_before), typing, rss_peak)


async def flood(fake: FakeTelegram, group, args: argparse.Namespace) -> None:
    every = args.seconds / args.messages
    started = time.monotonic()
    for n in range(args.messages):
        person, topic = PEOPLE[n % len(PEOPLE)], TOPICS[n % len(TOPICS)]
        fake.say(group, person, f"@eliza2llm_bot I keep thinking about {topic} ({n})")
        await asyncio.sleep(max(0.0, started + (n + 1) * every - time.monotonic()))


async def main(args: argparse.Namespace) -> None:
    print(f"{args.messages} messages in {args.seconds:g} s into one Telegram group "
          f"(fake Bot API, 20 messages a minute a group); patience {args.patience:g} s")
    for engine in args.engines.split(","):
        runs = []
        for backlog in (args.backlog, 0):  # bounded, then the baseline
            with tempfile.TemporaryDirectory() as folder:
                runs.append(await one_run(engine, backlog, args, Path(folder)))
            print(runs[-1].line(args.messages), flush=True)
        bounded, baseline = runs
        ratio = (bounded.replies + bounded.let_go) / max(baseline.replies + baseline.let_go, 1)
        per_reply = bounded.typing / max(bounded.replies, 1)
        met = "met" if per_reply <= GOAL_TYPING_PER_REPLY else "NOT met"
        print(f"{engine}: messages handled (answered or let go) bounded / unbounded: "
              f"{ratio:.1f}x; typing per reply {per_reply:.2f} (goal <= "
              f"{GOAL_TYPING_PER_REPLY}: {met})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--patience", type=float, default=150.0)
    parser.add_argument("--engines", default="eliza,ngram")
    parser.add_argument("--backlog", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
