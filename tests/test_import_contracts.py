"""The layering of DESIGN.md holds: import-linter's contracts in pyproject.toml, run as a test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("bot", "engines", "finetune")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_code_keeps_every_import_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def planted(tmp_path: Path, module: str, line: str) -> str:
    """lint-imports' output on a copy of the code with `line` appended to `module`'s file."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / f"{module.replace('.', '/')}.py").open("a", encoding="utf-8") as f:
        f.write(f"\n{line}\n")
    done = lint_imports(tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    return output


def test_an_engine_that_imports_the_bot_breaks_its_contract(tmp_path):
    output = planted(tmp_path, "engines.eliza.engine", "import bot  # crossing the border")
    assert "engines import neither the bot nor finetune BROKEN" in output
    assert "engines.eliza.engine -> bot" in output


def test_the_job_runner_importing_a_frontend_breaks_the_bots_layers(tmp_path):
    """The circle issue 28 found: services -> jobs -> frontends -> router -> commands ->
    services. Planted again, the layers contract names it."""
    output = planted(tmp_path, "bot.jobs", "from bot.frontends.telegram import TelegramFrontend")
    assert "the bot's layers" in output and "BROKEN" in output
    assert "bot.jobs -> bot.frontends.telegram" in output
