"""Save and load the counts behind a model: one .npz file with a JSON header and a format
version. A file this code cannot read is refused with a SnapshotError that says why; the
engine then rebuilds from the corpora (cobe's rule: never guess at a model file's meaning)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
_HEADER = "header"


class SnapshotError(Exception):
    """The snapshot cannot be used; the message says why, in one line."""


def save(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: a crash leaves the old snapshot or the new one, never half of one."""
    meta = json.dumps({"format": FORMAT_VERSION, **header}, ensure_ascii=False)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.savez(f, **{_HEADER: np.frombuffer(meta.encode(), np.uint8)}, **arrays)
    os.replace(tmp, path)


def load(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays); SnapshotError if the file is missing, damaged or of another format."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data[_HEADER]).decode())
            arrays = {name: data[name] for name in data.files if name != _HEADER}
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no snapshot yet") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: unreadable snapshot ({exc})") from None
    found = header.get("format") if isinstance(header, dict) else None
    if found != FORMAT_VERSION:
        raise SnapshotError(
            f"{path}: snapshot format {found!r}, this engine reads format {FORMAT_VERSION}"
        )
    return header, arrays
