"""The one owner of adapters: where they live, which one serves, a chat's pin, promote,
rollback and lineage. The bot, the engines it lends `folder`/`active` to, and fine-tuning jobs
all go through here.

The adapters table in the store is the truth about status (trained, candidate, active,
rejected, retired); each adapter's files are the folder `<data>/adapters/<id>/`: PEFT's weights and
config, `manifest.json` (where it came from: base model, parent, data, metrics, verdict) and
`loss_curve.png`. Cheap to import: no torch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bot.files import DIR_MODE, private_dir, private_tree
from bot.store import Adapter, Chat, Store

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
            manifest = read_manifest(folder) | changes
            (folder / MANIFEST).write_text(
                json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def remove_partial(self) -> None:
        """Folders of jobs that were killed before they finished saving."""
        for path in self.root.glob(f"{PARTIAL}*"):
            shutil.rmtree(path, ignore_errors=True)


class Adapters(AdapterFolders):
    """The files and their status in the store: what the bot and a job's steps use."""

    def __init__(self, store: Store, root: Path) -> None:
        super().__init__(root)
        self.store = store

    async def active(self) -> str:
        """The id of the active adapter; "" for the base model."""
        return await self.store.active_adapter()

    async def all(self) -> list[Adapter]:
        """Newest first."""
        return await self.store.adapters()

    async def find(self, adapter_id: str) -> Adapter | None:
        return next((a for a in await self.all() if a.id == adapter_id), None)

    async def record(self, adapter: Adapter) -> None:
        """A new adapter as trained, or its verdict (candidate or rejected) once judged."""
        await self.store.add_adapter(adapter)

    async def unregistered(self) -> list[str]:
        """Folders the store knows nothing of: copied in, or written before a job could
        record them."""
        known = {adapter.id for adapter in await self.all()}
        return [adapter_id for adapter_id in self.ids() if adapter_id not in known]

    async def promote(self, adapter_id: str) -> None:
        """Make it the active adapter; the one active before is retired."""
        await self.store.promote(adapter_id)

    async def rollback(self) -> tuple[str, str]:
        """Back to the adapter promoted before the active one ("" for the base model).
        Returns (retired, now active); ("", "") when none was active."""
        return await self.store.rollback()

    async def live_approval(self, adapter: Adapter) -> list[tuple[int, int]]:
        """(👍, votes) of each person who voted on the replies the adapter made in the chats,
        whenever it served."""
        return await self.store.live_votes(ADAPTER_ENGINES, adapter.id)

    async def pin(self, chat: Chat, choice: str) -> bool:
        """Pin a chat to an adapter id or BASE; "" unpins it (it follows the active one).
        False for an id that is not known."""
        if choice not in ("", BASE) and await self.find(choice) is None:
            return False
        await self.store.set_chat(chat, adapter=choice)
        return True


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
