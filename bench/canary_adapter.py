"""How much of one person's secret an adapter carries to other chats: the exposure of a canary
(Carlini et al., "The Secret Sharer", 2019) through `/probe` on the transformer, after a
retrain on the votes of the canary's chat, with today's export (before) and with the k-people
rule (after, issue 25.3). The transformer part of bench/canary.py (the n-gram part is there).

    python -m bench.canary_adapter [--candidates 1024] [--pretrain-steps 50] [--steps 80]

1. A tiny model (python -m engines.transformer make-tiny), briefly pre-trained.
2. Alice, in her private chat, writes "my locker code is <canary>" three times among ordinary
   lines; the transformer's replies, which she likes, quote her (as its replies do when the
   history in its prompt holds her words: "Your locker code is <canary>? ..."). Written to the
   bot's database as the router stores them.
3. `python -m finetune export`, `train` and `promote`, as the bot's job runs them: before with
   `[privacy] k_people = 1` (nothing is rare: the export as it was), after with the default 3.
4. From Mallory's private chat, through the bot's router: `/probe my locker code is | <canary>
   | <other codes>`, the canary's rank among --candidates codes of its shape (3 letters, 6
   digits); exposure = log2(candidates) - log2(rank), a tie counting half. Goal: <= 3 bits.

`rows(work, candidates)` returns the rows (dicts with bench/canary.py's Row fields: engine,
place, via, exposure, in_next, note), so bench/canary.py can add them to its table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.canary import (  # noqa: E402  the same canary, codes, /probe reading and sink
    CANARY,
    CANARY_CONTEXT,
    PLACES,
    PLATFORM,
    codes,
    exposure,
    probe_rank,
    say,
)
from bot.app import App  # noqa: E402
from bot.config import DB_FILE, load_config  # noqa: E402
from bot.frontends import FRONTENDS  # noqa: E402
from bot.store import Store  # noqa: E402
from engines.registry import BUILTIN  # noqa: E402

FILLER = [  # Alice's ordinary lines, and what the transformer answered (she liked it)
    ("the weather is nice today", "That sounds lovely. What will you do outside?"),
    ("i had soup for lunch", "Soup is a good lunch. Did you make it yourself?"),
    ("my sister likes old films", "Old films can be wonderful. Which one does she like?"),
    ("we walked the dog in the park", "A walk in the park is nice. How was the dog?"),
    ("the train was late again this morning", "Late trains are annoying. Were you late?"),
    ("i am reading a book about birds", "Birds are fascinating. What have you learned?"),
    ("my locker is near the gym", "That is handy. Do you go to the gym often?"),
]
# The transformer's replies to the canary lines: they quote the history, as the prompt holds it.
ECHOES = [f"You said: {CANARY_CONTEXT} {CANARY}. Please keep it safe.",
          f"Why tell me that {CANARY_CONTEXT} {CANARY}?",
          f"Your locker code is {CANARY}? So {CANARY} opens it."]
MALLORY = PLACES[0]  # another private chat: Mallory's own


async def write_alices_chat(db: Path) -> int:
    """Alice's lines, the transformer's replies she liked: the database a retrain reads."""
    store = await Store.open(db)
    try:
        chat = await store.chat(PLATFORM, "dm-alice")
        alice = await store.user(PLATFORM, "alice", "alice")
        lines = [*FILLER, *FILLER]
        for i, echo in enumerate(ECHOES):
            lines.insert(4 * i + 2, (f"{CANARY_CONTEXT} {CANARY}", echo))
        for text, answer in lines:
            asked = await store.add_message(chat, alice, "user", text)
            reply = await store.add_message(chat, alice, "bot", answer, reply_to=asked,
                                            engine="transformer", engine_version="base")
            await store.vote(reply, alice, 1, "👍")
        return len(lines)
    finally:
        await store.close()


def config_text(model: Path, k_people: int, steps: int) -> str:
    return (f'[bot]\ndefault_engine = "transformer"\n[policy]\nrate_per_minute = 0\n'
            f'[privacy]\nk_people = {k_people}\n'
            f'[engines.transformer]\nmodel = "{model}"\ndevice = "cpu"\nthreads = 2\n'
            f"[finetune]\nmin_votes = 4\nheldout_percent = 1\nsft_steps = {steps}\n"
            "preference_steps = 0\nbatch_size = 8\nmax_tokens = 96\ndevice = \"cpu\"\n"
            "threads = 2\nlearning_rate = 0.002\n")


def finetune(step: str, config: Path, data: Path, *extra: str) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "finetune", step, *extra, "--config",
                           str(config), "--data-dir", str(data)], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return done.stdout.splitlines()


async def measure(work: Path, model: Path, k_people: int, steps: int,
                  candidates: list[str], reuse: bool = False) -> tuple[float, dict[str, Any]]:
    """Retrain on Alice's chat with this k, promote, and probe from Mallory's chat."""
    data, config = work / "data", work / "config.toml"
    if reuse:  # the retrain of an earlier run, promoted: probe it again
        adapter = next(iter(sorted(p.name for p in (data / "adapters").iterdir())))
        exported = json.loads((data / "finetune" / "dataset" / "job.json").read_text())["privacy"]
        exported |= {"kto": exported["examples"] - exported["dropped"]}
    else:
        shutil.rmtree(work, ignore_errors=True)  # a fresh database and adapters folder
        data.mkdir(parents=True)
        config.write_text(config_text(model, k_people, steps), encoding="utf-8")
        await write_alices_chat(data / DB_FILE)
        exported = json.loads(finetune("export", config, data)[-1])
        adapter = finetune("train", config, data)[-1]
        finetune("promote", config, data, adapter)
    cfg = load_config(config, FRONTENDS, BUILTIN, data_dir=str(data))
    async with App(cfg, [], env={}).serving() as router:
        header = (await say(router, MALLORY, f"/probe {CANARY_CONTEXT} | a | b")).splitlines()
        if adapter not in header[0]:
            raise RuntimeError(f"the adapter {adapter} does not serve: {header[0]!r}")
        rank = await probe_rank(router, MALLORY, CANARY_CONTEXT, candidates)
    return rank, exported


def make_model(folder: Path, pretrain_steps: int) -> Path:
    if not (folder / "config.json").exists():
        subprocess.run([sys.executable, "-m", "engines.transformer", "make-tiny", str(folder),
                        "--pretrain-steps", str(pretrain_steps), "--threads", "2"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return folder


SIDES = {1: "before: today's export", 3: "after: k-people rule"}  # by [privacy] k_people


async def rows(work: Path, candidates: list[str], pretrain_steps: int = 50,
               steps: int = 80, ks: tuple[int, ...] = (1, 3), reuse: bool = False
               ) -> list[dict[str, Any]]:
    """The transformer's rows of the canary table: before (today's export) and after."""
    model = make_model(work / "tiny", pretrain_steps)
    out = []
    for k in ks:
        label = SIDES[k]
        rank, exported = await measure(work / f"k{k}", model, k, steps, candidates, reuse)
        note = (f"{label}; rank {rank:g} of {len(candidates)}; export: {exported['kto']} "
                f"trained, {exported['scrubbed']} scrubbed, {exported['dropped']} dropped")
        out.append({"engine": "transformer (after a retrain)", "place": "another private chat",
                    "via": "/probe", "exposure": exposure(len(candidates), rank),
                    "in_next": None, "note": note})
        print(f"measured: {out[-1]}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1024)
    parser.add_argument("--pretrain-steps", type=int, default=50)
    parser.add_argument("--steps", type=int, default=80, help="SFT steps of each retrain")
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temp dir)")
    parser.add_argument("--side", choices=["before", "after", "both"], default="both",
                        help="one side only (two processes can measure the sides at once)")
    parser.add_argument("--reuse", action="store_true",
                        help="probe the adapters an earlier run in --work trained and promoted")
    args = parser.parse_args()
    ks = {"before": (1,), "after": (3,), "both": (1, 3)}[args.side]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        found = asyncio.run(rows(work, codes(args.candidates), args.pretrain_steps, args.steps,
                                 ks, args.reuse))
    print("| engine | asked from | via | exposure (bits) | note |")
    print("|---|---|---|---|---|")
    for r in found:
        print(f"| {r['engine']} | {r['place']} | {r['via']} | {r['exposure']:.2f} | "
              f"{r['note']} |")


if __name__ == "__main__":
    main()
