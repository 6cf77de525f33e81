"""The README's commands, run as written, in order, in a fresh copy of the tree: the quickstart,
"Running it", the fine-tuning steps and the remote engine on a CPU. The README cannot drift.

What the test adds, and why:
- the copy's `.venv` is the venv the Makefile made for this suite (its entries linked, its
  stamps fresh, so make installs nothing and needs no network);
- `STEPS=3` in the environment (the Makefile's `STEPS ?= 300` takes it): pre-training takes
  seconds, not minutes;
- the quickstart's chat line is typed into the bot that `make run` starts;
- before the fine-tuning steps, votes in the database (people voting is not a shell command)
  and a `[finetune]` table in data/tiny.toml that trains for 2 steps instead of the defaults;
- ID in a fine-tuning line is the id that `train` printed;
- port 8000 of the remote section is a free port (another suite may run beside this one).
Each section's lines run in one bash, after the "Running it" section's venv activation (the
README says to activate it once per shell), with `set -e`: a line that fails fails the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.finetune_helpers import DB, seed_sync, taste_rows
from tests.harness import ROOT

pytest.importorskip("torch", reason="the quickstart's model needs the ml extra")
# Four sections, each a few processes that import torch: minutes on busy cores. Alone on this
# 2-core machine, under the others' load, each test took at most 35 s: 600 s is a margin of
# more than 10x, for `make test` beside another `make test`.
TEST_SECONDS = 600
pytestmark = [
    pytest.mark.skipif(shutil.which("make") is None or shutil.which("curl") is None,
                       reason="the README's commands use make and curl"),
    pytest.mark.timeout(TEST_SECONDS),
]

QUICKSTART = "### The neural engine offline, in three commands"
RUNNING = "## Running it"
FINETUNING = "## Learning from feedback"
REMOTE_CPU = "### The remote engine on a CPU: `transformers serve`"
# What a test's shell lines get in all, shorter than the test's own limit: a line that hangs
# fails with its output, before pytest-timeout would kill the test without it.
LINES_SECONDS = TEST_SECONDS - 60


def commands(heading: str) -> list[str]:
    """The code lines of the README section under `heading` (up to the next heading), each
    without its trailing comment."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"\n{heading}\n", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    lines = [line[4:] for line in section.splitlines() if line.startswith("    ")
             and not line.startswith("     ")]
    return [re.sub(r"\s{2,}#\s.*$", "", line).strip() for line in lines]  # aligned comments


def copy_tree(target: Path) -> None:
    """The files git has (tracked, or new and not ignored), as a fresh clone would have them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def link_venv(target: Path) -> None:
    """`.venv` as the Makefile made it for this suite: its entries linked, its stamps newer
    than pyproject.toml, so that make takes everything as installed."""
    venv = Path(sys.prefix)
    (target / ".venv").mkdir()
    for entry in venv.iterdir():
        if not entry.name.startswith("."):
            (target / ".venv" / entry.name).symlink_to(entry)
    now = time.time()
    os.utime(target / "pyproject.toml", (now - 30, now - 30))
    for stamp in (".base", ".ml", ".test"):
        (target / ".venv" / stamp).touch()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("clone")
    copy_tree(target)
    link_venv(target)
    return target


@pytest.fixture
def shell(tree: Path):
    """`shell(script, stdin="")`: `bash` in the tree; a test's calls share LINES_SECONDS."""
    deadline = time.monotonic() + LINES_SECONDS
    return lambda script, stdin="": bash(tree, script, stdin, deadline - time.monotonic())


def bash(tree: Path, script: str, stdin: str, timeout: float):
    """`script` in bash with `set -e`, in the venv as "Running it" says; the result. Whatever
    it started and left running (a server, when a line failed) ends with it."""
    env = {k: v for k, v in os.environ.items()  # a shell as a user has it: under `make test`
           if k not in ("DISCORD_TOKEN", "TELEGRAM_TOKEN", "VIRTUAL_ENV", "PYTHONPATH",
                        "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}  # no outer make
    env |= {"STEPS": "3", "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost"}
    activate = commands(RUNNING)[0]
    process = subprocess.Popen(["bash", "-c", f"set -e\n{activate}\n{script}"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tree, env=env,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(stdin, timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{script}\n--- timed out: stdout\n{stdout}\n--- stderr\n{stderr}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 0, f"{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    return subprocess.CompletedProcess(process.args, 0, stdout, stderr)


def test_the_quickstart_builds_the_tiny_model_starts_the_bot_with_it_and_switches_a_chat(
        tree, shell):
    build, start, chat = commands(QUICKSTART)
    assert build == "make tiny" and chat == "/engine transformer"
    built = shell(build)
    assert "step 3/3  loss " in built.stdout and (tree / "data/tiny.toml").exists()
    started = shell(start, stdin=f"{chat}\nhello there\n")
    assert "This chat now talks to transformer." in started.stdout
    assert "Traceback" not in started.stderr
    assert "make-tiny" not in shell(build).stdout  # the same STEPS: nothing to rebuild
    with sqlite3.connect(tree / "data" / DB) as db:
        replies = db.execute("SELECT engine, engine_version FROM messages WHERE role = 'bot'"
                             " AND reply_to IS NOT NULL").fetchall()
    assert replies == [("transformer", "base")]


def test_running_it_activates_the_venv_and_pipes_a_console_session(shell):
    activate, *session = commands(RUNNING)
    assert activate == ". .venv/bin/activate" and session
    out = shell("\n".join(session)).stdout
    assert "This chat now talks to eliza." in out and "IN WHAT WAY" in out
    assert "keyword" in out.lower()  # /why explains ELIZA's rule
    assert out.splitlines()[-1] == "IN WHAT WAY"  # and once more through `make run`


def test_the_fine_tuning_steps_one_by_one(tree, shell):
    lines = commands(FINETUNING)
    assert [line.split()[3] for line in lines] == ["export", "train", "evaluate", "promote",
                                                  "status", "rollback"]
    seed_sync(tree / "data" / DB, taste_rows(12))
    with (tree / "data" / "tiny.toml").open("a", encoding="utf-8") as config:
        config.write("\n[finetune]\nmin_votes = 6\nheldout_percent = 25\nsft_steps = 2\n"
                     "preference_steps = 2\nbatch_size = 4\nmax_tokens = 96\nthreads = 1\n"
                     'device = "cpu"\n')
    export, train, *rest = lines
    adapter = shell(f"{export}\n{train}").stdout.splitlines()[-1]
    assert (tree / "data" / "adapters" / adapter / "manifest.json").exists()
    done = shell("\n".join(line.replace(" ID ", f" {adapter} ") for line in rest))
    assert f'"retired": "{adapter}"' in done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_remote_engine_on_a_cpu_with_transformers_serve(shell):
    pytest.importorskip("fastapi", reason="transformers serve needs the test extra's fastapi")
    script = "\n".join(commands(REMOTE_CPU)).replace("8000", str(free_port()))
    out = shell(script).stdout.splitlines()  # pip's lines first, then the chat
    assert "This chat now talks to remote." in out, out
    assert "My last reply came from remote base." in out and "tokens_out: 32" in out, out
