"""python -m finetune export|train|evaluate|promote|rollback|status|run --data-dir DIR
[--config PATH]

  export     votes from the store -> <data>/finetune/dataset/*.jsonl
  train      the exported dataset -> <data>/adapters/<id>/, registered as trained (prints the id)
  evaluate   ID: the adapter against the active one on the held-out votes
  promote    ID: make it the active adapter (any trained one, judged or not)
  rollback   back to the adapter active before
  status     the adapters and their scores, and adapter folders the store does not know
  run        export -> train -> evaluate -> promote, as one job (what the bot starts)
Progress and results are JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

from bot import job_protocol as said
from bot.config import ConfigError
from engines.transformer.loading import ModelUnavailable
from finetune import processes
from finetune import run as steps
from finetune.progress import emit_from_any
from finetune.settings import Settings, load_settings


def program_name(argv0: str) -> str:
    """How the user started us: `eliza2llm-finetune` (the console script) or `python -m
    finetune` (also how the bot starts jobs)."""
    name = Path(argv0).name
    return "python -m finetune" if name in ("__main__.py", "") else name


PROG = program_name(sys.argv[0])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["export", "train", "evaluate", "promote", "rollback",
                                         "status", "run"])
    parser.add_argument("adapter", nargs="?", default="", help="for evaluate and promote")
    parser.add_argument("--data-dir", help="the bot's data dir (default: [bot] data_dir)")
    parser.add_argument("--config", type=Path, help="the bot's config.toml")
    parser.add_argument("--job", type=int, help="the bot's job id (names the adapter)")
    parser.add_argument("--follow", type=int, metavar="PID",
                        help="end when this process (the bot that started the job) ends")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.umask(0o077)  # exports, adapters and their manifests are private, as the bot's files
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # stderr is the bot's log
    warnings.filterwarnings("ignore", category=FutureWarning)
    if args.step in ("evaluate", "promote") and not args.adapter:
        print(f"{PROG} {args.step} ID: which adapter?", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config, args.data_dir)
        if args.follow:
            follow(args.follow)
        if processes.is_main():  # under a launcher, one process tidies up
            steps.remove_partial(settings)
        return run_step(args, settings)
    except (ConfigError, steps.StepError, ModelUnavailable) as exc:  # the user's to fix:
        # one line, as the bot says it (no model, a bad config, an unknown adapter id)
        reason = " ".join(str(exc).split())
        if args.step == "run":  # the bot's job: it shows the reason in the chat
            emit_from_any(said.Failed(event=said.FAILED, reason=reason, rank=processes.rank()))
        print(f"{PROG} {args.step}: {reason}", file=sys.stderr)
        return 2
    except Exception as exc:
        # The bot shows the cause in the chat: under a launcher, stderr ends with the
        # launcher's report, not with the cause. The traceback still follows.
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        emit_from_any(said.Failed(event=said.FAILED, reason=cause, rank=processes.rank()))
        raise


def run_step(args: argparse.Namespace, settings: Settings) -> int:
    if args.step == "run":
        return steps.do_run(settings, args.job)
    if args.step == "export":
        steps.do_export(settings)
    elif args.step == "train":
        data = steps.dataset(settings)
        if steps.enough_votes(settings, data):
            adapter_id = steps.do_train(settings, data, args.job)
            if adapter_id:  # the main process's; the others print nothing
                print(adapter_id)
    elif args.step == "evaluate":
        steps.do_evaluate(settings, steps.dataset(settings), args.adapter)
    elif args.step == "promote":
        steps.do_promote(settings, args.adapter)
    elif args.step == "rollback":
        steps.do_rollback(settings)
    else:
        print_status(steps.status(settings))
    return 0


def print_status(rows: list[dict]) -> None:
    """One JSON line per adapter on stdout; what to do next on stderr."""
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    if not rows:
        print("no adapters yet: /retrain or `python -m finetune run` trains one",
              file=sys.stderr)
    loose = [row["id"] for row in rows if row["status"] == steps.UNREGISTERED]
    if loose:
        print(f"not registered in the store: {', '.join(loose)} "
              "(`python -m finetune promote ID` registers and promotes one)", file=sys.stderr)


def follow(pid: int, every: float = 1.0) -> None:
    """Exit as soon as `pid` is no longer among our ancestors (it died: what it started was
    handed to init). Between the bot and the job there may be a local launcher (torchrun)."""

    def watch() -> None:
        while pid in ancestors():
            time.sleep(every)
        print("the bot that started this job has stopped; ending", file=sys.stderr)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="follow-parent").start()


def ancestors() -> list[int]:
    """The parent, its parent, and so on (from /proc; where there is none, the parent)."""
    chain: list[int] = []
    pid = os.getppid()
    while pid > 1 and len(chain) < 64:
        chain.append(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
    return chain


if __name__ == "__main__":
    sys.exit(main())
