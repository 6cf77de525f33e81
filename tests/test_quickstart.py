"""The README's "neural engine offline, in three commands", run as written: the two `make` lines
in a copy of the Makefile whose venv counts as installed (its stamps are fresh, so make installs
nothing and needs no network), the third typed into the chat. Two make variables are added on
the command line: PY, this interpreter, and STEPS=10, so pre-training takes seconds."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

HEADING = "### The neural engine offline, in three commands"


def quickstart() -> list[str]:
    """The commands of the README's block under HEADING, without their comments."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(HEADING, 1)[1].split("\n\n")[1]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]


@pytest.fixture
def checkout(tmp_path):
    """The Makefile with a venv that make takes as installed, ml extra included."""
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / ".venv").mkdir()
    now = time.time()
    for age, path in ((30, "pyproject.toml"), (20, ".venv/.base"), (10, ".venv/.ml")):
        (tmp_path / path).touch()
        os.utime(tmp_path / path, (now - age, now - age))
    return tmp_path


def make(line: str, cwd, chat: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISCORD_TOKEN", None)
    env.pop("TELEGRAM_TOKEN", None)
    args = [*shlex.split(line), f"PY={sys.executable}", "STEPS=10"]
    return subprocess.run(args, input=chat, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_three_commands_build_the_tiny_model_start_with_it_and_switch_a_chat(checkout):
    build, start, switch = quickstart()
    assert build.startswith("make ") and start.startswith("make run ML=1 ")
    assert switch == "/engine transformer"

    built = make(build, checkout)
    assert built.returncode == 0, built.stderr
    assert "step 10/10" in built.stdout and (checkout / "data/models/tiny/config.json").exists()

    started = make(start, checkout, chat=f"{switch}\nhello there\n")
    assert started.returncode == 0, started.stderr
    assert "This chat now talks to transformer." in started.stdout
    assert "Traceback" not in started.stderr
    with sqlite3.connect(checkout / "data" / "eliza2llm.sqlite3") as db:
        replies = db.execute("SELECT engine, engine_version FROM messages WHERE role = 'bot'"
                             " AND reply_to IS NOT NULL").fetchall()
    assert replies == [("transformer", "base")]
