"""The one owner of adapters: where they live, which one serves, a chat's pin, promote,
rollback and lineage. The bot (its commands, the live guard, the job runner and the app, which
lends `active` and `mark_broken` to the engines), and fine-tuning jobs and their shell commands
all go through here.

The adapters table in the store is the truth about status (trained, candidate, active,
rejected, retired); each adapter's files are the folder `<data>/adapters/<id>/`: PEFT's weights and
config, `manifest.json` (where it came from: base model, parent, data, metrics, verdict; who
promoted it and who rolled it back) and `loss_curve.png`. Cheap to import: no torch.

Changing which adapter serves is one path whoever asks (an admin's /rollback, the guard, a
job, `python -m finetune promote|rollback`): `promote` and `rollback` write the store, note the
manifest and swap every engine that serves adapters, each engine's failure reported and the
others still swapped. A process without engines (a job, a shell command) writes the store
alone; the running bot's `follow`, called every `[finetune] watch_seconds` beside the guard,
finds the store's active adapter differing from what its engines were told to serve and swaps
it in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.calm import one_line
from bot.events import Sink, deliver
from bot.files import DIR_MODE, private_dir, private_tree
from bot.i18n import t
from bot.store import Adapter, Chat, Store
from engines.base import Capability

if TYPE_CHECKING:
    from engines.registry import Engines

log = logging.getLogger(__name__)

BASE = "base"  # a chat pinned to no adapter at all; also the version the base model replies as
MANIFEST = "manifest.json"
LOSS_CURVE = "loss_curve.png"
PARTIAL = ".partial-"  # a folder still being written; renamed to its id when whole
ADAPTER_ENGINES = ("transformer", "remote")  # the engines whose replies an adapter makes


class AdapterFolders:
    """The files: one folder per adapter id under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, adapter_id: str) -> Path:
        return self.root / adapter_id

    def lineage(self, adapter_id: str) -> list[str]:
        """The adapter and the ones it was trained on top of, newest first."""
        chain: list[str] = []
        while adapter_id and adapter_id not in chain:
            chain.append(adapter_id)
            adapter_id = read_manifest(self.folder(adapter_id)).get("parent", "")
        return chain

    def trained_on(self, message_ids: list[int]) -> list[str]:
        """The adapters whose training or held-out data included any of these messages."""
        wanted, found = set(message_ids), []
        for folder in sorted(p for p in self.root.glob("*") if p.is_dir()):
            used = read_manifest(folder).get("message_ids", {})
            if wanted & {i for ids in used.values() for i in ids}:
                found.append(folder.name)
        return found

    def ids(self) -> list[str]:
        """The adapter folders on disk, whole ones only (not those still being written)."""
        if not self.root.is_dir():
            return []
        return sorted(path.name for path in self.root.iterdir()
                      if path.is_dir() and not path.name.startswith("."))

    def new_id(self, job_id: int | None) -> str:
        """A fresh id, "ft<job>-<UTC time>", that no folder has yet."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        adapter_id, n = f"ft{job_id or 0}-{stamp}", 1
        while self.folder(adapter_id).exists():
            n += 1
            adapter_id = f"ft{job_id or 0}-{stamp}-{n}"
        return adapter_id

    def partial(self, adapter_id: str) -> Path:
        """Where a job writes an adapter before `publish` makes it whole at once."""
        return self.root / f"{PARTIAL}{adapter_id}"

    def start(self, adapter_id: str) -> Path:
        """The partial folder, created private, in a private adapters folder: adapters learned
        from people's words, whatever the data folder's mode (a container's volume exists
        before the bot does, with the volume's mode)."""
        private_dir(self.root)
        os.chmod(self.root, DIR_MODE)  # ours alone, even where the data folder is shared
        return private_dir(self.partial(adapter_id))

    def publish(self, adapter_id: str) -> Path:
        """Rename the finished partial folder to its id: a killed job leaves no half adapter.
        Everything in it private first (PEFT and matplotlib write under the umask)."""
        private_tree(self.partial(adapter_id))
        return self.partial(adapter_id).replace(self.folder(adapter_id))

    def note(self, adapter_id: str, **changes: Any) -> None:
        """Add to an adapter's manifest (a rollback and why, say); nothing for a missing folder.
        The model card (README.md) is the job's to write, from the manifest it finds."""
        folder = self.folder(adapter_id)
        if (folder / MANIFEST).is_file():
            update_manifest(folder, **changes)

    def remove_partial(self) -> None:
        """Folders of jobs that were killed before they finished saving."""
        for path in self.root.glob(f"{PARTIAL}*"):
            shutil.rmtree(path, ignore_errors=True)


Teller = tuple[Sink, str]  # where to announce a rollback of an adapter, and in which language


@dataclass
class Activation:
    """What a promotion, rollback or swap did: the adapter that serves now ("" for the base
    model), the one it replaced, the version the engines report, and each engine that could not
    swap (its name -> why, in one line): it serves what it served before."""

    active: str
    retired: str = ""
    version: str = ""
    failed: dict[str, str] = field(default_factory=dict)

    def failures(self, lang: str) -> str:
        """" Engine X failed: why ..." for each engine that could not swap, to follow the
        chat's report; "" when none failed."""
        return "".join(" " + t(lang, "swap_failed", engine=engine, reason=why)
                       for engine, why in self.failed.items())


class Adapters(AdapterFolders):
    """The files, their status in the store, and which adapter the engines serve."""

    def __init__(self, store: Store, root: Path, engines: Engines | None = None) -> None:
        super().__init__(root)
        self.store = store
        self.engines = engines  # None in a job or a shell command: the running bot follows
        self.serving = ""  # the adapter the engines were last told to serve ("" for base)
        self._tell: dict[str, Teller] = {}  # adapter id -> where its rollback is announced
        self._one_change = asyncio.Lock()  # a swap is not interleaved with another

    async def begin(self) -> None:
        """What the engines serve as they start: the store's active adapter."""
        self.serving = await self.active()

    # reading ----------------------------------------------------------------------------------

    async def active(self) -> str:
        """The id of the active adapter; "" for the base model (also while it is broken)."""
        return await self.store.active_adapter()

    async def current(self) -> Adapter | None:
        """The active adapter's record, unless it is broken (then the base model serves)."""
        return next((a for a in await self.all() if a.status == "active" and not a.broken),
                    None)

    async def all(self) -> list[Adapter]:
        """Newest first."""
        return await self.store.adapters()

    async def find(self, adapter_id: str) -> Adapter | None:
        return next((a for a in await self.all() if a.id == adapter_id), None)

    async def replaced(self, adapter_id: str) -> str:
        """The adapter `adapter_id` replaced when it was promoted (BASE for the base model)."""
        return await self.store.replaced(adapter_id) or BASE

    async def record(self, adapter: Adapter) -> None:
        """A new adapter as trained, or its verdict (candidate or rejected) once judged."""
        await self.store.add_adapter(adapter)

    async def mark_broken(self, adapter_id: str, why: str) -> None:
        """An engine could not load it: the base model serves instead (Adapter.broken)."""
        await self.store.mark_adapter_broken(adapter_id, why)

    async def unregistered(self) -> list[str]:
        """Folders the store knows nothing of: copied in, or written before a job could
        record them."""
        known = {adapter.id for adapter in await self.all()}
        return [adapter_id for adapter_id in self.ids() if adapter_id not in known]

    async def live_votes(self, version: str, replies_since: float = 0.0,
                         votes_before: float = float("inf"),
                         first: int = -1) -> list[tuple[int, int]]:
        """(👍, votes) of each person who voted on the replies `version` (an adapter id or
        BASE) made in the chats, as Store.live_votes narrows them."""
        return await self.store.live_votes(ADAPTER_ENGINES, version, replies_since,
                                           votes_before, first)

    async def live_approval(self, adapter: Adapter) -> list[tuple[int, int]]:
        """(👍, votes) of each person who voted on the adapter's replies, whenever it served."""
        return await self.live_votes(adapter.id)

    # changing ---------------------------------------------------------------------------------

    async def promote(self, adapter_id: str, by: str, tell: Teller | None = None) -> Activation:
        """Make it the active adapter (the one active before is retired) and serve it; a
        rollback of it is announced to `tell`. KeyError for an id the store does not know."""
        async with self._one_change:
            before = await self.active()
            await self.store.promote(adapter_id)
            self.note(adapter_id, promoted={"at": _now(), "by": by})
            log.info("adapter %s promoted by %s", adapter_id, by)
            return await self._swap(adapter_id, before, tell)

    async def rollback(self, why: str, by: str, only: str = "",
                       details: dict[str, Any] | None = None,
                       announce: Callable[[str], str] | None = None) -> Activation:
        """Retire the active adapter and serve the one it replaced (the base model if none);
        with `only`, nothing happens unless that one is active. `why` ("" for none: /adapters
        keeps showing its verdict) and `details` go into its metrics and manifest; `announce`
        words it, in a language, for where its promotion asked it to be told. `retired` is ""
        when nothing was rolled back."""
        async with self._one_change:
            record = ({"reason": why} if why else {}) | {"rolled_back_by": by} | (details or {})
            retired, active = await self.store.rollback(only=only, why=record)
            if not retired:
                return Activation(active=await self.active())
            self.note(retired, rolled_back={"at": _now(), "by": by, "reason": why,
                                            **(details or {})})
            log.warning("adapter %s rolled back by %s%s", retired, by, f": {why}" if why else "")
            done = await self._swap(active, retired)
        await self._announce(retired, announce)
        return done

    async def adopt(self, adapter_id: str, by: str, tell: Teller | None = None) -> Activation:
        """A job promoted `adapter_id` in the store from its own process: serve it (or, if
        another was promoted since, that one: the store is the truth)."""
        async with self._one_change:
            active = await self.active()
            if active != adapter_id:
                log.warning("%s promoted %s, but %s is active now: serving that", by,
                            adapter_id, active or BASE)
            return await self._swap(active, "", tell if active == adapter_id else None)

    async def follow(self) -> Activation | None:
        """Swap in the store's active adapter if it is not what the engines were told to serve
        (a shell's `python -m finetune promote` or `rollback`, say); None when it is."""
        async with self._one_change:
            active, before = await self.active(), self.serving
            if active == before:
                return None
            done = await self._swap(active, before)
        failed = f" (not by {', '.join(done.failed)})" if done.failed else ""
        log.info("the active adapter changed from %s to %s in the store: swapped in%s",
                 before or BASE, active or BASE, failed)
        return done

    async def pin(self, chat: Chat, choice: str) -> bool:
        """Pin a chat to an adapter id or BASE; "" unpins it (it follows the active one).
        False for an id that is not known. The engines load it on the chat's next reply."""
        if choice not in ("", BASE) and await self.find(choice) is None:
            return False
        await self.store.set_chat(chat, adapter=choice)
        return True

    async def _swap(self, adapter_id: str, retired: str, tell: Teller | None = None
                    ) -> Activation:
        """Every loaded engine that serves adapters serves `adapter_id` from now on; one that
        fails keeps what it served, is logged and named, and the others swap all the same. An
        engine started later asks for the active adapter itself."""
        done = Activation(adapter_id, retired, adapter_id or BASE)
        for engine in self.engines.loaded() if self.engines is not None else []:
            if not engine.can(Capability.ADAPTERS):
                continue
            try:
                done.version = await engine.use_adapter(adapter_id)
            except Exception as exc:
                done.failed[engine.name] = one_line(exc)
                log.warning("engine %s could not swap in %s: %s", engine.name,
                            adapter_id or BASE, done.failed[engine.name])
        self.serving = adapter_id
        if tell is not None and adapter_id:
            self._tell[adapter_id] = tell
        return done

    async def _announce(self, adapter_id: str, announce: Callable[[str], str] | None) -> None:
        """Say it where the adapter's promotion asked (the chat whose /retrain made it; kept in
        memory: after a restart, and for a scheduled job, the log has it)."""
        told = self._tell.pop(adapter_id, None)
        if told is None or announce is None:
            return
        sink, lang = told
        await deliver(sink.another() or sink, announce(lang))


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def save_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """The one writer of manifest.json (the job's, and the bot's notes)."""
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")


def update_manifest(folder: Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into the manifest and write it; returns the whole."""
    manifest = read_manifest(folder) | changes
    save_manifest(folder, manifest)
    return manifest


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
