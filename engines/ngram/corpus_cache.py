"""Where a language's base counts come from: the snapshot in the engine's folder, or else the
corpora (counted, then saved as the next snapshot). Chat text is never saved here: it is
re-read from the bot's store at every start, so opting out and /forget take effect."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engines import corpora
from engines.ngram import snapshot, tokens
from engines.ngram.languages import Language

log = logging.getLogger(__name__)


def snapshot_path(data_dir: Path, lang: str) -> Path:
    return data_dir / f"ngram-{lang}.npz"


def base_language(lang: str, options: Any, data_dir: Path, k_people: int = 3) -> Language:
    """The language with its corpus counts, from the snapshot when it fits the options and the
    corpora found now; it knows which corpora those were and which are missing. What it
    learns from people follows `k_people` and the options' bound."""
    path = snapshot_path(data_dir, lang)
    wanted = _identity(lang, options)
    learning = {"k_people": k_people, "max_learned": options.max_learned_ngrams}
    language = _from_snapshot(path, wanted, lang, options, learning)
    if language is None:
        language = Language(lang, options.order, options.max_copy, **learning)
        if options.corpora:
            language.learn(corpora.sentences(lang, _folders(lang, options)))
        try:
            snapshot.save(path, wanted | language.header(), language.arrays())
        except OSError as exc:
            log.warning("%s: cannot save the snapshot (%s)", path, exc)
    if options.corpora:
        language.found = corpora.describe(lang, _folders(lang, options))
    return language


def _from_snapshot(path: Path, wanted: dict[str, Any], lang: str, options: Any,
                   learning: dict[str, int]) -> Language | None:
    try:
        header, arrays = snapshot.load(path)
        if {k: header.get(k) for k in wanted} != wanted:
            raise snapshot.SnapshotError(f"{path}: made for other settings or corpora")
        return Language.restore(lang, options.order, options.max_copy, header, arrays,
                                **learning)
    except snapshot.SnapshotError as exc:
        log.info("%s; rebuilding the %s model from the corpora", exc, lang)
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("%s: damaged snapshot (%s); rebuilding the %s model", path, exc, lang)
    return None


def _folders(lang: str, options: Any) -> list[str]:
    return options.corpus_dirs.get(lang, [])


def _identity(lang: str, options: Any) -> dict[str, Any]:
    """What a snapshot must have been made with to be reused: the corpora's fingerprint changes
    when a corpus is installed, updated or removed, or a named folder's files change."""
    folders = _folders(lang, options)
    source = corpora.fingerprint(lang, folders) if options.corpora else "no corpora"
    return {"lang": lang, "order": options.order, "max_copy": options.max_copy,
            "corpora": source, "tokens_version": tokens.VERSION}
