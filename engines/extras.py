"""Which optional parts of the package are installed, and how to install one: the advice
differs for a source checkout (editable install, the Makefile's venv) and an installed wheel."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json

DISTRIBUTION = "eliza2llm"


def missing_modules(*modules: str) -> list[str]:
    """The top-level modules of `modules` that cannot be imported here (found without importing
    them: torch alone takes seconds)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


@functools.cache
def is_editable() -> bool:
    """Installed from a source checkout with `pip install -e` (as `make` does)."""
    try:
        direct = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return True  # run from a tree that is not installed at all: a checkout
    return bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))


def install_advice(extra: str) -> str:
    """The command that installs `extra` for this installation."""
    if is_editable():
        return f"make run ML=1, or .venv/bin/pip install -e '.[{extra}]'"
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def needs_extra(extra: str, *modules: str) -> str:
    """"" when every module is there, else one line naming the extra and how to install it."""
    missing = missing_modules(*modules)
    if not missing:
        return ""
    return f"needs the {extra} extra ({', '.join(missing)} not installed): {install_advice(extra)}"
