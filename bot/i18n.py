"""The bot's own words in English and German; the texts live in bot/locales/*.toml."""

from __future__ import annotations

import functools
import logging
import tomllib
from pathlib import Path
from typing import Any

LOCALES = Path(__file__).with_name("locales")
LANGUAGES = ("en", "de")
FALLBACK = "en"  # every key exists here (tests/test_i18n_policy.py); others may lag behind

log = logging.getLogger(__name__)


@functools.cache
def catalog(lang: str) -> dict[str, Any]:
    with (LOCALES / f"{lang}.toml").open("rb") as f:
        return tomllib.load(f)


def _lookup(lang: str, key: str) -> Any:
    node: Any = catalog(lang)
    for part in key.split("."):
        node = node[part]
    return node


def t(lang: str, key: str, /, **values: Any) -> str:
    """The text `key` (a dotted path such as "commands.help") in `lang`, filled with `values`.
    A key missing in `lang` falls back to English (logged once), so a translation that lags
    behind shows English words, never an error."""
    lang = lang if lang in LANGUAGES else FALLBACK
    try:
        node = _lookup(lang, key)
    except (KeyError, TypeError):
        if lang == FALLBACK:
            raise
        _missing(lang, key)
        node = _lookup(FALLBACK, key)
    return node.format(**values) if values else node


@functools.cache
def _missing(lang: str, key: str) -> None:
    log.warning("locale %s has no text %r: English instead", lang, key)
