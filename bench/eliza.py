"""Replies per second: our ELIZA against nltk.chat.eliza, measured in the same run.

    python -m bench.eliza [--rounds 20] [--lines 300]
    python -m bench.eliza --profile        # where the engine's time goes (cProfile, top lines)

Both answer the same messages (the 1966 paper's conversation and longer lines). Ours is timed
three times: the interpreter alone; the engine as a router that keeps each chat's state in
memory uses it (the state handed back as the engine left it, the reply streamed: the goal's
path); and the engine with the state through JSON and back on every message, as a router that
reads and writes the state on every message would pay. nltk's ELIZA is a list of regular
expressions tried in order with a random answer; it keeps no state and knows nothing of keyword
ranks, memory or links.
Needs the `bench` extra (pip install -e .[bench]); nltk.chat needs no downloaded data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

from engines.base import Conversation, EngineSetup
from engines.eliza.engine import ElizaEngine, ElizaOptions
from engines.eliza.interpreter import respond
from engines.eliza.parser import load_script
from engines.eliza.state import ChatState

SCRIPT = Path(__file__).resolve().parent.parent / "engines" / "eliza" / "scripts" / "doctor.en"
PAPER = [
    "Men are all alike.", "They're always bugging us about something or other.",
    "Well, my boyfriend made me come here.", "He says I'm depressed much of the time.",
    "It's true. I am unhappy.", "I need some help, that much seems certain.",
    "Perhaps I could learn to get along with my mother.", "My mother takes care of me.",
    "My father.", "You are like my father in some ways.",
    "You are not very aggressive but I think you don't want me to notice that.",
    "You don't argue with me.", "You are afraid of me.", "My father is afraid of everybody.",
    "Bullies.",
]
LONG = "I remember that my mother always said I was like my father in every way " * 4


def messages(count: int) -> list[str]:
    lines = [*PAPER, LONG]
    return [lines[i % len(lines)] for i in range(count)]


Pass = Callable[[list[str]], object]  # answers every line once


def rates(passes: dict[str, Pass], lines: list[str], rounds: int) -> dict[str, float]:
    """Replies per second of each, best of `rounds` passes over `lines`. The contenders take
    turns pass by pass, so a burst of other work on a shared machine meets them all alike."""
    best = dict.fromkeys(passes, float("inf"))
    for _ in range(rounds):
        for name, run_pass in passes.items():
            start = time.perf_counter()
            run_pass(lines)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(lines) / seconds for name, seconds in best.items()}


def ours_interpreter() -> Pass:
    script, state = load_script(SCRIPT), ChatState()
    return lambda lines: [respond(script, state, line).text for line in lines]


def ours_engine(through_json: bool) -> Callable[[], Pass]:
    """Per message a Conversation, the reply streamed, the state kept for the next message:
    as the engine left it, or (`through_json`) written to JSON and read back as the store does."""

    def make() -> Pass:
        engine = ElizaEngine(ElizaOptions(), EngineSetup(data_dir=Path(".")))
        loop = asyncio.new_event_loop()
        loop.run_until_complete(engine.start())
        stored: dict = {}

        async def replies(lines: list[str]) -> None:
            nonlocal stored
            for line in lines:
                conv = Conversation(chat_key="bench", text=line, lang="en", state=stored)
                "".join([delta async for delta in engine.reply(conv)])
                stored = json.loads(json.dumps(conv.state, ensure_ascii=False)) \
                    if through_json else conv.state

        return lambda lines: loop.run_until_complete(replies(lines))

    return make


def nltk_eliza() -> Pass:
    from nltk.chat.eliza import eliza_chatbot

    random.seed(1966)
    return lambda lines: [eliza_chatbot.respond(line) for line in lines]


def profile(lines: list[str], rounds: int) -> None:
    """The engine's pass (state kept live) under cProfile: the functions that take the time."""
    import cProfile
    import pstats

    run_pass = ours_engine(through_json=False)()
    run_pass(lines)
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [run_pass(lines) for _ in range(rounds)])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--lines", type=int, default=320)
    parser.add_argument("--profile", action="store_true", help="profile the engine instead")
    args = parser.parse_args()
    lines = messages(args.lines)
    if args.profile:
        profile(lines, args.rounds)
        return
    measured = rates({
        "nltk.chat.eliza (baseline)": nltk_eliza(),
        "ours: interpreter": ours_interpreter(),
        "ours: engine, state kept live": ours_engine(through_json=False)(),
        "ours: engine, state via JSON": ours_engine(through_json=True)(),
    }, lines, args.rounds)
    baseline = measured["nltk.chat.eliza (baseline)"]
    print(f"{len(lines)} messages, best of {args.rounds} rounds (taking turns)")
    for name, ours in measured.items():
        print(f"{name:34} {ours:10,.0f} replies/s  {ours / baseline:.2f}x")
    print(f"eliza: {measured['ours: engine, state kept live'] / baseline:.2f}x (goal 5x)")


if __name__ == "__main__":
    main()
