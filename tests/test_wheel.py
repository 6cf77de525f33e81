"""The package as a person installs it: a wheel built from a copy of the checkout, installed
into a fresh virtual environment outside it, run through its console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from importlib import metadata
from pathlib import Path

from tests.harness import ROOT, heavy

# Build outputs and local state stay out of the copy (and the checkout gets no build/ folder).
LOCAL_STATE = {".git", ".venv", "data", "build", "adapters", "scratch", "bench", ".hypothesis"}
BUILD_OUTPUT = shutil.ignore_patterns("*.egg-info", "__pycache__", ".*_cache")

pytestmark = heavy  # a wheel built, installed into a venv and run: pip and imports



def not_source(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == ROOT
    return set(BUILD_OUTPUT(folder, names)) | (LOCAL_STATE & set(names) if top else set())


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=not_source)
    # No network: --no-build-isolation builds with this environment's setuptools.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=120)
    return next((tmp_path / "dist").glob("eliza2llm-*.whl"))


def fresh_venv(where: Path) -> Path:
    """A venv without pip whose dependencies are this environment's, seen through a .pth
    file (site-packages listed there are searched, their own .pth files are not: the
    checkout's editable install stays out of sight)."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path("
                              "'purelib'))"], capture_output=True, text=True, check=True)
    ours = sysconfig.get_path("purelib")
    Path(purelib.stdout.strip(), "dependencies.pth").write_text(ours + "\n", encoding="utf-8")
    return python


def test_the_wheel_ships_every_data_file_the_code_reads(tmp_path):
    names = set(zipfile.ZipFile(build_wheel(tmp_path)).namelist())
    tracked = subprocess.run(["git", "ls-files", "bot", "engines", "finetune"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    data = [name for name in tracked if not name.endswith(".py")]
    assert data, "git ls-files found no data files"
    assert [name for name in data if name not in names] == []
    assert any(name.endswith("licenses/LICENSE") for name in names)


def test_the_installed_console_script_answers_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    python = fresh_venv(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=120)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DISCORD_TOKEN", "TELEGRAM_TOKEN")}
    where = subprocess.run([python, "-c", "import bot, engines; print(bot.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv")  # not the checkout's
    done = subprocess.run(
        [tmp_path / "venv" / "bin" / "eliza2llm", "console", "--data-dir", "state"],
        input="/engine eliza\nMen are all alike.\n", cwd=elsewhere, env=env,
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "IN WHAT WAY" in done.stdout.splitlines()
    assert (elsewhere / "state" / "eliza2llm.sqlite3").exists()
    finetune = subprocess.run([tmp_path / "venv" / "bin" / "eliza2llm-finetune", "--help"],
                              cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert finetune.returncode == 0, finetune.stderr
    version = subprocess.run([tmp_path / "venv" / "bin" / "eliza2llm", "--version"],
                             cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"eliza2llm {metadata.version('eliza2llm')}"
    usage = subprocess.run([tmp_path / "venv" / "bin" / "eliza2llm", "--no-such-option"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "(see eliza2llm --help)" in usage.stderr
    advice = subprocess.run([python, "-c", "from engines.extras import install_advice; "
                             "print(install_advice('ml'))"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, check=True)
    assert advice.stdout.strip() == "pip install 'eliza2llm[ml]'"  # not the checkout's -e .
