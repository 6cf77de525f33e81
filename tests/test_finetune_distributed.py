"""`python -m finetune train` on 1 process, and on 2 under `torchrun --nproc_per_node 2` and
`accelerate launch --num_processes 2` (gloo on this CPU): with the same exported votes, seed
and global batch, DDP takes the same steps, so the final losses and the adapter weights agree;
only the main process writes.

Tolerance: 1e-4 absolute on losses and weights. The two runs compute the same sums in a
different order and with differently padded batches (each process pads its own rows), which
moves fp32 results by about 1e-7 per pass; AdamW's first steps divide by the gradient's own
size and magnify that: measured, the weights differ by 6e-6 and the losses by 5e-7 at most.
Real mistakes show: each process's KL estimate from its own half of the batch moved the final
KTO loss by 0.026; gradients averaged where they should be summed moved weights by 0.024.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.__main__ import main
from tests.finetune_helpers import (
    DB,
    TORCHRUN_2,
    finetune_toml,
    free_port,
    seed_sync,
    taste_rows,
)
from tests.harness import HEAVY_WAIT, ROOT, heavy
from tests.tiny_model import tiny_model_dir

TOLERANCE = 1e-4
BIN = Path(sys.executable).parent
pytestmark = heavy  # two processes that import torch, and the export before them


def torchrun() -> list[str]:
    return [str(BIN / "torchrun"), *TORCHRUN_2, "-m", "finetune"]


def accelerate_launch() -> list[str]:
    """--multi_gpu is accelerate's name for "several processes with DDP"; on a machine without
    GPUs they join over gloo (its --cpu would start one process)."""
    return [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--main_process_ip", "127.0.0.1", "--main_process_port",
            str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", "finetune"]


@pytest.fixture(scope="module")
def exported(root, tmp_path_factory) -> Path:
    """A data dir with votes in the store and the dataset exported from them."""
    work = tmp_path_factory.mktemp("exported")
    (work / "config.toml").write_text(finetune_toml(
        tiny_model_dir(root), heldout_percent=10, sft_steps=2, preference_steps=3, batch_size=4,
        learning_rate=0.01), encoding="utf-8")
    seed_sync(work / "data" / DB, taste_rows(16))
    assert main(["export", "--config", str(work / "config.toml"),
                 "--data-dir", str(work / "data")]) == 0
    return work


def train(exported: Path, tmp_path: Path, launcher: list[str]) -> tuple[list[str], Path]:
    """`LAUNCHER train` on a copy of the exported data dir: (stdout lines, adapters dir)."""
    data = tmp_path / "data"
    shutil.copytree(exported / "data", data)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run([*launcher, "train", "--config", str(exported / "config.toml"),
                           "--data-dir", str(data)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=HEAVY_WAIT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines(), data / "adapters"


def adapter(adapters: Path) -> tuple[dict, dict]:
    """The one adapter folder's manifest and LoRA weights."""
    from safetensors.torch import load_file

    [folder] = [p for p in adapters.iterdir()]  # one folder, no second one, no partial left
    weights = load_file(folder / "adapter_model.safetensors")
    return json.loads((folder / "manifest.json").read_text()), weights


@pytest.fixture(scope="module")
def one_process(exported, tmp_path_factory) -> tuple[list[str], Path]:
    return train(exported, tmp_path_factory.mktemp("one"), [sys.executable, "-m", "finetune"])


@pytest.mark.parametrize("launcher", [torchrun, accelerate_launch])
def test_two_processes_train_the_same_adapter_as_one(exported, one_process, launcher, tmp_path):
    import torch

    one_out, one_dir = one_process
    two_out, two_dir = train(exported, tmp_path, launcher())

    one, one_weights = adapter(one_dir)
    two, two_weights = adapter(two_dir)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["devices"] == ["cpu", "cpu"] and two["global_batch"] == one["global_batch"] == 4
    assert (one["micro_batch"], two["micro_batch"]) == (4, 2)
    assert one["accumulation_steps"] == two["accumulation_steps"] == 1
    assert [p["name"] for p in two["phases"]] == ["sft", "kto"]
    for name, loss in one["metrics"].items():
        assert two["metrics"][name] == pytest.approx(loss, abs=TOLERANCE), name
    assert one_weights.keys() == two_weights.keys() and len(one_weights) > 0
    for key, weight in one_weights.items():
        assert torch.allclose(two_weights[key], weight, atol=TOLERANCE, rtol=0), key
    fresh = {k: v for k, v in one_weights.items() if "lora_B" in k}
    assert any(v.abs().max() > 10 * TOLERANCE for v in fresh.values())  # it did learn

    # Only the main process spoke and wrote: each line once, the id printed once.
    for out, manifest in ((one_out, one), (two_out, two)):
        events = [json.loads(line) for line in out[:-1]]
        assert [e["step"] for e in events if "step" in e] == [1, 2, 3, 4, 5]
        assert [e.get("event") for e in events if "event" in e] == ["trained"]
        assert out[-1] == manifest["id"]

