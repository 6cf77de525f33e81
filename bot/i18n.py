"""The bot's own words in English and German; the texts live in bot/locales/*.toml."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

LOCALES = Path(__file__).with_name("locales")
LANGUAGES = ("en", "de")


@functools.cache
def catalog(lang: str) -> dict[str, Any]:
    with (LOCALES / f"{lang}.toml").open("rb") as f:
        return tomllib.load(f)


def t(lang: str, key: str, /, **values: Any) -> str:
    """The text `key` (a dotted path such as "commands.help") in `lang`, filled with `values`."""
    node: Any = catalog(lang if lang in LANGUAGES else "en")
    for part in key.split("."):
        node = node[part]
    return node.format(**values) if values else node
