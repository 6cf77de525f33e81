"""The bot's adapters on the server, through vLLM's runtime LoRA API:
POST /v1/load_lora_adapter {"lora_name", "lora_path"} and POST /v1/unload_lora_adapter.

An adapter is loaded once (concurrent asks for one id wait for the same load), used by sending
its id as `model`, and the least recently used are unloaded beyond `max_adapters` (never one in
use, never the active one). A server without the API (404/405/501) serves the base model only,
and says so through `unsupported`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from pathlib import Path, PurePosixPath
from typing import Any

from engines.remote.client import RemoteError, describe

log = logging.getLogger(__name__)

NO_LORA_API = (404, 405, 501)  # the endpoint is missing: vLLM without runtime LoRA updating


class AdapterError(RemoteError):
    """An adapter the server could not load; one line."""


class RemoteAdapters:
    def __init__(self, client: Any, local_root: Path | None, server_root: str, keep: int) -> None:
        self._client = client
        self.local_root = local_root
        self.server_root = server_root
        self.keep = keep
        self.loaded: OrderedDict[str, None] = OrderedDict()  # oldest use first
        self.unsupported = ""  # why the server cannot load adapters, once it has said so
        self._in_use: Counter[str] = Counter()
        self._loading: dict[str, asyncio.Task] = {}

    def server_path(self, adapter_id: str) -> str:
        """Where the server finds the adapter: adapter_root/ID, or our own folder's path."""
        if self.server_root:
            return str(PurePosixPath(self.server_root) / adapter_id)
        return str((self.local_root or Path(".")) / adapter_id)

    async def ensure(self, adapter_id: str, protect: str = "") -> None:
        """Loaded on the server when this returns; AdapterError (one line) if it cannot be."""
        if self.unsupported:
            raise AdapterError(self.unsupported)
        if adapter_id in self.loaded:
            self.loaded.move_to_end(adapter_id)
            return
        task = self._loading.get(adapter_id)
        if task is None:
            task = self._loading[adapter_id] = asyncio.ensure_future(self._load(adapter_id))
            task.add_done_callback(lambda _: self._loading.pop(adapter_id, None))
        await asyncio.shield(task)
        await self._evict(protect)

    async def _load(self, adapter_id: str) -> None:
        import openai

        if self.local_root is not None and not (self.local_root / adapter_id).is_dir():
            raise AdapterError(f"adapter {adapter_id!r} is not in {self.local_root}")
        body = {"lora_name": adapter_id, "lora_path": self.server_path(adapter_id)}
        try:
            await self._client.post("/load_lora_adapter", body=body, cast_to=str)
        except openai.APIStatusError as exc:
            if exc.status_code in NO_LORA_API:
                self.unsupported = (f"the server cannot load adapters (POST /v1/load_lora_adapter:"
                                    f" {exc.status_code}); it serves the base model")
                raise AdapterError(self.unsupported) from None
            if "already" not in describe(exc).lower():  # loaded before we (re)started: fine
                raise AdapterError(f"adapter {adapter_id}: {describe(exc)}") from None
        except openai.APIError as exc:
            raise AdapterError(f"adapter {adapter_id}: {describe(exc)}") from None
        self.loaded[adapter_id] = None
        log.info("adapter %s loaded on the server from %s", adapter_id, body["lora_path"])

    def hold(self, adapter_id: str) -> None:
        if adapter_id:
            self._in_use[adapter_id] += 1

    def release(self, adapter_id: str) -> None:
        if adapter_id:
            self._in_use[adapter_id] -= 1
            if self._in_use[adapter_id] <= 0:
                del self._in_use[adapter_id]

    async def _evict(self, protect: str) -> None:
        spare = [a for a in self.loaded if a != protect and a not in self._in_use]
        for adapter_id in spare[:max(0, len(self.loaded) - self.keep)]:
            del self.loaded[adapter_id]
            try:
                await self._client.post("/unload_lora_adapter", body={"lora_name": adapter_id},
                                        cast_to=str)
            except Exception as exc:  # it stays on the server; we load it again when asked
                log.warning("adapter %s could not be unloaded: %s", adapter_id, describe(exc))

    def forget_unserved(self, served: tuple[str, ...]) -> None:
        """After the server restarted, adapters it no longer lists are loaded again on use."""
        if served:
            for adapter_id in [a for a in self.loaded if a not in served]:
                del self.loaded[adapter_id]

    def retry_support(self) -> None:
        """An admin asked again: perhaps the server was restarted with the LoRA API."""
        self.unsupported = ""
