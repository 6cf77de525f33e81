"""Helpers for the fine-tuning tests: a store full of transformer replies and votes, and a
config that trains the tiny model in a few steps."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from bot.config import DB_FILE as DB  # noqa: F401  (the tests take it from here)
from bot.store import Store

# Replies that ask back are liked, the others disliked: a taste the tiny model can pick up.
PROMPTS = ["hello there", "how are you", "tell me about cats", "what is a transformer",
           "I like rain", "good morning", "my day was long", "do you dream"]
LIKED = ["And how do you feel about that?", "What makes you say so?", "Why do you ask?"]
DISLIKED = ["No.", "I do not know.", "Fine."]


def finetune_toml(model: Path, **overrides) -> str:
    """A few steps on the tiny model, and a gate that promotes whatever comes out (the votes'
    gate wide open, the sampled replies' gate off: tests/test_finetune_gate.py tests it)."""
    values = dict(min_votes=6, heldout_percent=25, sft_steps=2, preference_steps=2,
                  batch_size=4, max_tokens=96, device='"cpu"', threads=1, min_accuracy=0.0,
                  tolerance=1.0, gate_prompts=0) | overrides
    lines = "\n".join(f"{key} = {value}" for key, value in values.items())
    return (f'[engines.transformer]\nmodel = "{model}"\nthreads = 1\nmax_new_tokens = 8\n'
            f"[finetune]\n{lines}\n")


async def seed(db: Path, rows: list[tuple[str, str, dict[str, int]]],
               opted_out: tuple[str, ...] = (), asker: str = "alice") -> list[int]:
    """Store (prompt, reply, {voter: ±1}) as a chat with the transformer; returns reply ids."""
    store = await Store.open(db)
    try:
        chat = await store.chat("test", "c1")
        ids = []
        for prompt, reply, votes in rows:
            who = await store.user("test", asker, asker)
            asked = await store.add_message(chat, who, "user", prompt)
            ids.append(await store.add_message(chat, who, "bot", reply, reply_to=asked,
                                               engine="transformer", engine_version="base"))
            for voter, value in votes.items():
                await store.vote(ids[-1], await store.user("test", voter, voter), value, "👍")
        for name in opted_out:
            await store.set_opted_out(await store.user("test", name, name), True)
        return ids
    finally:
        await store.close()


def taste_rows(n: int) -> list[tuple[str, str, dict[str, int]]]:
    """n replies, alternately liked (a question back) and disliked, each voted by two people."""
    rows = []
    for i in range(n):
        good = i % 2 == 0
        reply = (LIKED if good else DISLIKED)[i % 3]
        value = 1 if good else -1
        rows.append((PROMPTS[i % len(PROMPTS)], reply, {"bob": value, "carol": value}))
    return rows


def seed_sync(db: Path, rows, **kwargs) -> list[int]:
    return asyncio.run(seed(db, rows, **kwargs))


# Two processes, their rendezvous on a port the store binds itself (port 0): no two tests,
# nor anything else on the machine, can be handed the same one.
TORCHRUN_2 = ["--nproc_per_node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
              "127.0.0.1:0"]


def free_port() -> int:
    """A port nobody listens on now, for a launcher's rendezvous (tests never share one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dataset():
    """Six voted replies to three prompts, all for training (none held out)."""
    from bot.store import VotedReply
    from finetune.export import build

    replies = [VotedReply(i, i - 1, "en", f"prompt {i % 3}", text, "base", score, 1)
               for i, (text, score) in enumerate(
                   [("Why?", 1), ("No.", -1), ("How so?", 1), ("Fine.", -1), ("Really?", 1),
                    ("Stop.", -1)], start=2)]
    return build(replies, heldout_percent=0)
