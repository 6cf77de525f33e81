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
swaps the store's active adapter into each engine that does not serve it: what each engine
serves is kept per engine and changed only when its swap worked, so an engine that failed (a
full GPU) is tried again every round, and one that joined after a swap (it was still starting)
is swapped too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.calm import RepeatedFailure
from bot.events import Sink, deliver
from bot.files import DIR_MODE, FILE_MODE, private_dir, private_tree
from bot.i18n import t
from bot.store import Adapter, Chat, Store
from engines.base import Capability
from engines.errors import typed_line

if TYPE_CHECKING:
    from engines.base import Engine
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
    model), the one it replaced, the version the engines report, how many engines swapped, and
    each engine that could not swap (its name -> why, in one line): it serves what it served
    before, and the bot tries it again at its next look at the store. `broken` is why an engine
    found the adapter that was asked for unusable (its files): the store marks it broken and
    every engine serves the base model instead (`active` is "" then)."""

    active: str
    retired: str = ""
    version: str = ""
    failed: dict[str, str] = field(default_factory=dict)
    swapped: int = 0
    broken: str = ""
    asked: str = ""  # the adapter the swap was asked for, before a broken one gave way to base

    @property
    def served(self) -> bool:
        """The engines serve `active` now: one swapped at least, or none tried and failed."""
        return self.swapped > 0 or not self.failed

    def failures(self, lang: str) -> str:
        """What went wrong, to follow the chat's report ("" when nothing did): the adapter
        found broken, or " Engine X failed: why ..." for each engine that could not swap."""
        if self.broken:
            return " " + t(lang, "swap_broken", adapter=self.asked, reason=self.broken)
        return "".join(" " + t(lang, "swap_failed", engine=engine, reason=why)
                       for engine, why in self.failed.items())


class Adapters(AdapterFolders):
    """The files, their status in the store, and which adapter the engines serve."""

    def __init__(self, store: Store, root: Path, engines: Engines | None = None) -> None:
        super().__init__(root)
        self.store = store
        self.engines = engines  # None in a job or a shell command: the running bot follows
        # engine name -> the adapter it serves ("" for base), set when its swap worked; an
        # engine without an entry (started since) is swapped at the next look at the store
        self.serving: dict[str, str] = {}
        self.seen = ""  # the store's active adapter when the engines were last told
        self._tell: dict[str, Teller] = {}  # adapter id -> where its rollback is announced
        self._one_change = asyncio.Lock()  # a swap is not interleaved with another
        self._failing: dict[str, RepeatedFailure] = {}  # engine name -> its swaps that failed

    async def begin(self) -> None:
        """What the engines serve as they start: the store's active adapter."""
        self.seen = await self.active()

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

    async def register(self, adapter: Adapter) -> None:
        """A new adapter as trained, or its verdict (candidate or rejected) once judged."""
        await self.store.add_adapter(adapter)

    async def mark_broken(self, adapter_id: str, why: str) -> None:
        """An engine found its files unusable: the base model serves instead (Adapter.broken;
        the next swap or look at the store moves every engine to it)."""
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
            retired, reinstated = await self.store.rollback(only=only, why=record)
            if not retired:
                return Activation(active=await self.active())
            self.note(retired, rolled_back={"at": _now(), "by": by, "reason": why,
                                            **(details or {})})
            log.warning("adapter %s rolled back by %s%s", retired, by, f": {why}" if why else "")
            active = await self.active()  # the one reinstated, unless it is broken: base
            done = await self._swap(active, retired)
            done.asked = reinstated
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
        """Swap the store's active adapter into every engine that does not serve it (a shell's
        `python -m finetune promote` or `rollback`, an engine that failed to swap before or was
        still starting during a swap); None when all serve it."""
        async with self._one_change:
            active, before = await self.active(), self.seen
            behind = [engine for engine in self._adapter_engines()
                      if self._serves(engine) != active]
            if not behind and active == before:
                return None
            done = await self._swap(active, before if active != before else "", engines=behind)
        if active != before:
            failed = f" (not by {', '.join(done.failed)})" if done.failed else ""
            log.info("the active adapter changed from %s to %s in the store: swapped in%s",
                     before or BASE, active or BASE, failed)
            await self._forget_tells()
        return done

    async def pin(self, chat: Chat, choice: str) -> bool:
        """Pin a chat to an adapter id or BASE; "" unpins it (it follows the active one).
        False for an id that is not known. The engines load it on the chat's next reply."""
        if choice not in ("", BASE) and await self.find(choice) is None:
            return False
        await self.store.set_chat(chat, adapter=choice)
        return True

    async def _swap(self, adapter_id: str, retired: str, tell: Teller | None = None,
                    engines: list[Engine] | None = None) -> Activation:
        """Every loaded engine that serves adapters (or those of `engines`) serves `adapter_id`
        from now on; one that fails keeps what it served, is logged (once in a while when it
        keeps failing) and named, and the others swap all the same. If an engine found the
        adapter broken meanwhile, every engine serves the base model instead."""
        done = Activation(adapter_id, retired, adapter_id or BASE, asked=adapter_id)
        targets = self._adapter_engines() if engines is None else engines
        await self._use(done, adapter_id, targets)
        if done.failed and adapter_id:
            record = await self.find(adapter_id)
            if record is not None and record.broken:  # its files, not a passing failure
                done = Activation("", retired, BASE, failed=done.failed, asked=adapter_id,
                                  broken=record.broken)
                await self._use(done, "", self._adapter_engines())
        self.seen = done.active
        if tell is not None and done.active:
            self._tell[done.active] = tell
        return done

    async def _use(self, done: Activation, adapter_id: str, engines: list[Engine]) -> None:
        for engine in engines:
            failing = self._failing.setdefault(
                engine.name, RepeatedFailure(log, f"engine {engine.name} could not swap"))
            try:
                done.version = await engine.use_adapter(adapter_id)
            except Exception as exc:
                done.failed[engine.name] = typed_line(exc)
                failing.failed(exc)
                continue
            done.failed.pop(engine.name, None)
            done.swapped += 1
            self.serving[engine.name] = adapter_id
            failing.succeeded()

    def _adapter_engines(self) -> list[Engine]:
        loaded = self.engines.loaded() if self.engines is not None else []
        return [engine for engine in loaded if engine.can(Capability.ADAPTERS)]

    def _serves(self, engine: Engine) -> str | None:
        """What the engine serves, as far as its swaps tell; None for one that joined since
        (it may have read the active adapter before a swap it missed). One started with an
        adapter of its own (`[engines.transformer] adapter`) keeps it until the store changes."""
        own = getattr(getattr(engine, "options", None), "adapter", "")
        if engine.name not in self.serving and own:
            self.serving[engine.name] = self.seen
        return self.serving.get(engine.name)

    async def _forget_tells(self) -> None:
        """Where to announce the rollback of an adapter rolled back elsewhere (a shell): it
        will not be rolled back again."""
        rolled_back = {a.id for a in await self.all() if a.rolled_back_at is not None}
        for adapter_id in rolled_back & set(self._tell):
            del self._tell[adapter_id]

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
    """The one writer of manifest.json (the job's, and the bot's notes: two processes). A
    private file written whole beside it, then renamed over it: a reader never sees half."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MANIFEST}.")  # 0600 already
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_manifest(folder: Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into the manifest and write it; returns the whole."""
    manifest = read_manifest(folder) | changes
    save_manifest(folder, manifest)
    return manifest


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
