"""A stand-in for `python -m finetune run` that takes no training: it writes an adapter folder
with a manifest, registers and promotes it in the bot's store, and ends with the job's "done"
line, so the bot relays and concludes it as it would a real job. Run by the script that
`fake_python` writes, in the job's place."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from bot.adapters import MANIFEST, Adapters
from bot.config import DB_FILE
from bot.store import Adapter, Store

ACCURACY = 0.8  # the held-out accuracy the fake job reports


def fake_python(folder: Path) -> str:
    """An executable that runs this module whatever it is asked (`-m finetune run ...`)."""
    script = folder / "fake-python"
    # As a module (the job's PYTHONPATH has the checkout): run as a script, tests/ would come
    # first on sys.path and tests/engines.py would hide the engines package.
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.fake_job "$@"\n')
    script.chmod(0o755)
    return str(script)


def hanging_launcher(folder: Path) -> str:
    """A [finetune] launcher whose job reports one step and then runs until the bot that
    started it is gone (as a real job told --follow does), without ever finishing."""
    script = folder / "hanging-launcher"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.fake_job --hang "$@"\n')
    script.chmod(0o755)
    return str(script)


def hang_until_orphaned() -> None:
    print(json.dumps({"step": 1, "total": 100, "loss": 1.0, "eta": 600}), flush=True)
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.1)


async def promote(data_dir: Path, job: int) -> str:
    adapter_id = f"ft{job}"
    store = await Store.open(data_dir / DB_FILE)
    try:
        adapters = Adapters(store, data_dir / "adapters")
        folder = adapters.folder(adapter_id)
        folder.mkdir(parents=True)
        (folder / MANIFEST).write_text(json.dumps({"id": adapter_id, "job": job}))
        verdict = {"new": {"accuracy": ACCURACY}, "reason": "better on held-out votes"}
        await adapters.register(Adapter(adapter_id, "tiny", str(folder), "candidate",
                                      {"evaluation": verdict}, job))
        await adapters.promote(adapter_id, f"job {job}")
    finally:
        await store.close()
    return adapter_id


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--job", type=int, required=True)
    parser.add_argument("--hang", action="store_true")
    args, _ = parser.parse_known_args(argv)
    if args.hang:
        return hang_until_orphaned()
    adapter_id = asyncio.run(promote(args.data_dir, args.job))
    print(json.dumps({"event": "done", "adapter": adapter_id, "promoted": True,
                      "reason": "better on held-out votes"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
