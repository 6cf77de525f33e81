"""A hub model's first download: its progress in bytes, and a failure said in one line.

The hub client reports bytes through a progress-bar class it is handed (`tqdm_class`, a
documented argument of `snapshot_download`); `Meter` is such a class that draws nothing and
tells the engine "downloaded N of M bytes", so `/engines` can say how far it got. A failure
becomes one line naming the cause (no network, a gated or unknown model, a full disk) and its fix.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from typing import Any

from engines.errors import one_line

log = logging.getLogger(__name__)

# What a causal LM folder needs; the hub's copies in other formats (onnx, gguf) stay there.
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]

Progress = Callable[[int, int], None]  # (bytes so far, bytes in all, as far as known)


class DownloadFailed(Exception):
    """The model could not be downloaded; one line saying why and what to do."""


def fetch(model: str, progress: Progress | None = None) -> str:
    """The local folder of a hub model: the cache's copy, or one download into the cache.

    One attempt, not one per file the loaders ask for: without network the hub client retries
    each request for about 20 s, and its warnings would flood the console.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()
    try:
        return snapshot_download(model, allow_patterns=MODEL_FILES, local_files_only=True)
    except LocalEntryNotFoundError:
        log.warning("downloading %s from the Hugging Face hub (once, into its cache)", model)
    try:
        return snapshot_download(model, allow_patterns=MODEL_FILES,
                                 tqdm_class=meter(progress or _ignore))
    except Exception as exc:  # every cause is one line to a user
        raise DownloadFailed(explain(model, exc)) from exc


def _ignore(done: int, total: int) -> None:
    pass


def meter(progress: Progress) -> type:
    """A progress-bar class for the hub client whose byte counts go to `progress`. The client
    makes several: a count of files, and byte bars whose totals grow as files start; the
    bytes written to disk (its "Reconstructing" bar, fed by every file's download) count."""
    lock = threading.RLock()  # files download in threads of their own

    class Meter:
        def __init__(self, *args: Any, total: float | None = None, initial: float = 0,
                     desc: str = "", unit: str = "it", **kwargs: Any) -> None:
            self.desc, self.unit, self.n, self._total = desc, unit, initial, total

        @property
        def total(self) -> float | None:
            return self._total

        @total.setter
        def total(self, value: float | None) -> None:  # a file started: the total grew
            self._total = value
            self._report()

        def update(self, n: float | None = 1) -> None:
            with lock:
                self.n += n or 0
                self._report()

        def _report(self) -> None:
            if self.unit == "B" and not self.desc.startswith("Downloading"):
                with lock:
                    progress(int(self.n), int(self._total or 0))

        def __enter__(self) -> Meter:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def _nothing(self, *args: Any, **kwargs: Any) -> None:
            pass

        # What the hub client also calls on a bar: nothing to draw here.
        close = refresh = set_description = set_description_str = _nothing
        set_postfix_str = set_postfix = reset = clear = _nothing

    return Meter


def explain(model: str, exc: BaseException) -> str:
    """Why `model` could not be downloaded, and the fix, in one line."""
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    hub = f"https://huggingface.co/{model}"
    local = ("or set [engines.transformer] model to a local folder (make smol builds "
             "SmolLM2 offline)")
    if _caused_by(exc, GatedRepoError):
        return (f"model {model} is gated: accept its terms at {hub} and give this machine "
                f"your token (`hf auth login`, or HF_TOKEN), {local}")
    if _caused_by(exc, RepositoryNotFoundError):
        return (f"the hub has no model {model} (or it is private: then `hf auth login`): check "
                f"[engines.transformer] model, {local}")
    if _disk_full(exc):
        return (f"the disk is full: downloading {model} into {constants.HF_HUB_CACHE} needs "
                f"room (free some, or point HF_HOME at a bigger disk), {local}")
    return (f"model {model} is not on this machine and could not be downloaded "
            f"({one_line(exc)}): check the network (and HF_ENDPOINT or a proxy), run "
            f"`hf download {model}` where there is network, {local}")


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _caused_by(exc: BaseException, kind: type) -> bool:
    return any(isinstance(e, kind) for e in _chain(exc))


def _disk_full(exc: BaseException) -> bool:
    return any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in _chain(exc))
