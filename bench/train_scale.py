"""Training on 1 process against N: `python -m finetune train` and `torchrun --nproc_per_node N
-m finetune train` on the same exported votes, seed and global batch, in one run.

Prints steps per second and tokens per second (prompt and reply tokens of every batch, over
all processes) of each, and tokens per CPU-second (what keeping the processes in step costs; a
shared machine's load moves it less), from the adapters' manifests (the training loop's own
clock: model loading and saving are left out), and the speed-up of the most processes over one
as the last line (the best of `--rounds` interleaved runs of each, so that a burst of others'
load on a shared machine does not decide it). On the CPU each process gets `--threads` torch threads
(1: one core each, so N processes use N cores; on a shared machine several threads per process
wait on each other); on CUDA each process takes a GPU and trains in bf16.

    python -m bench.train_scale                          # the tiny model, 1 and 2 processes
    python -m bench.train_scale --device cuda --processes 1 4 --model DIR
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL = 1.5  # 2 processes on 2 cores: ideal 2x, less the all-reduce and the shared machine


def votes(count: int) -> list[dict]:
    """KTO rows, alternately liked and disliked, with varied prompts."""
    from tests.finetune_helpers import DISLIKED, LIKED, PROMPTS

    rows = []
    for i in range(count):
        liked = i % 2 == 0
        rows.append({"prompt": f"{PROMPTS[i % len(PROMPTS)]}, number {i}", "lang": "en",
                     "completion": (LIKED if liked else DISLIKED)[i % 3], "label": liked,
                     "id": 2 * i + 2, "prompt_id": 2 * i + 1})
    return rows


def prepare(work: Path, model: str, args: argparse.Namespace, processes: int) -> tuple[Path, Path]:
    """A data dir with an exported dataset (no database: train does not need one), and its
    config."""
    from bot.config import DATASET_DIR
    from finetune.export import Dataset, write

    work.mkdir(parents=True, exist_ok=True)
    data = work / f"p{processes}"
    kto = votes(args.rows)
    sft = [{k: r[k] for k in ("prompt", "completion", "lang", "id", "prompt_id")}
           for r in kto if r["label"]]
    write(Dataset(sft=sft, kto=kto), data / DATASET_DIR)
    threads = args.threads if args.device == "cpu" else 1
    config = work / f"p{processes}.toml"
    config.write_text(
        f'[engines.transformer]\nmodel = "{model}"\n[finetune]\nsft_steps = {args.steps // 2}\n'
        f"preference_steps = {args.steps - args.steps // 2}\nbatch_size = {args.batch}\n"
        f'max_tokens = 128\ncontinue_from_active = false\ndevice = "{args.device}"\n'
        f"threads = {threads}\nmin_votes = 1\n", encoding="utf-8")
    return data, config


def launcher(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "finetune"]
    # port 0: the rendezvous store binds a free port itself
    return [str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node", str(processes),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "-m", "finetune"]


def train(work: Path, model: str, args: argparse.Namespace, processes: int) -> dict:
    """One training run; its manifest."""
    data, config = prepare(work, model, args, processes)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    # torchrun sets OMP_NUM_THREADS=1 in its workers; the same for one process, or OpenMP's
    # own threads there would compete with the other jobs on a shared machine
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run([*launcher(processes), "train", "--config", str(config),
                           "--data-dir", str(data)], capture_output=True, text=True, env=env,
                          cwd=work)
    if done.returncode != 0:
        sys.exit(f"{processes} processes: exit code {done.returncode}\n{done.stderr[-2000:]}")
    adapter = done.stdout.splitlines()[-1]
    return json.loads((data / "adapters" / adapter / "manifest.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_scale")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help='"cpu" or "cuda"')
    parser.add_argument("--model", help="a model folder (default: the tiny model, built here)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps (SFT + KTO)")
    parser.add_argument("--batch", type=int, default=16, help="the global batch")
    parser.add_argument("--rows", type=int, default=64, help="voted replies in the dataset")
    parser.add_argument("--threads", type=int, default=1, help="CPU: torch threads per process")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, interleaved")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="train-scale-"))
    model = args.model or str(tiny_model(work))
    print(f"model {model}, device {args.device}, global batch {args.batch}, {args.steps} steps")
    speeds: dict[int, float] = {}
    for round_ in range(args.rounds):  # interleaved, the best of each kept: others' load
        for processes in args.processes:
            manifest = train(work / f"round{round_}", model, args, processes)
            seconds = manifest["duration_seconds"]
            speeds[processes] = max(speeds.get(processes, 0.0), args.steps / seconds)
            print(f"  {processes} process(es): {args.steps / seconds:.2f} steps/s, "
                  f"{manifest['tokens_per_second']:.0f} tokens/s, "
                  f"{manifest['tokens'] / manifest['cpu_seconds']:.0f} tokens/CPU-s, "
                  f"{manifest['dtype']} "
                  f"({manifest['mixed_precision']} autocast), micro-batch "
                  f"{manifest['micro_batch']} x {manifest['accumulation_steps']}, "
                  f"{seconds:.1f} s on {manifest['devices']}")
    most, fewest = max(speeds), min(speeds)
    print(f"best steps/s of {most} processes over {fewest}, of {args.rounds} rounds:")
    print(f"train_scale: {speeds[most] / speeds[fewest]:.2f}x (goal {GOAL}x)")
    return 0


def tiny_model(work: Path) -> Path:
    from tests.tiny_model import tiny_model_dir

    return tiny_model_dir(work)


if __name__ == "__main__":
    sys.exit(main())
