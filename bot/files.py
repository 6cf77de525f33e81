"""Files the bot and its jobs write hold people's words: they are private to the user the bot
runs as (files 0600, folders 0700), whatever the umask of whoever started it."""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as a private folder. One that exists is left as it
    is: it may be shared (`--data-dir .`, /tmp); the files in it are private all the same."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty and private if it does not exist; tighten it if it does, so that a
    library that opens it later (SQLite, a log handler) finds it private."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    os.chmod(path, FILE_MODE)
    return path


def private_tree(path: Path) -> Path:
    """Make a folder of our own private, and all it holds (what a library wrote there under
    the umask: an adapter that PEFT and matplotlib saved)."""
    for folder, _, files in os.walk(path):
        os.chmod(folder, DIR_MODE)
        for name in files:
            os.chmod(Path(folder) / name, FILE_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to a private file (replacing what it held)."""
    private_file(path).write_text(text, encoding="utf-8")
