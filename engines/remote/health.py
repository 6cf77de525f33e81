"""The server's health, checked in the background and cached, so `info()` never waits.

A check asks GET /health (vLLM, SGLang, `transformers serve`; a server without it is judged by
its model list alone) and GET /v1/models (what it serves: base models and loaded adapters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engines.remote.client import describe, server_root

log = logging.getLogger(__name__)

RECHECK_DOWN = 1.0  # seconds: a server that is down is asked again this soon when we look


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""  # why not ok, in one line
    served: tuple[str, ...] = ()  # model ids from /v1/models
    base_models: tuple[str, ...] = ()  # those without a parent (not adapters)
    checked_at: float = field(default_factory=time.monotonic)


class HealthMonitor:
    def __init__(self, client: Any, base_url: str, interval: float, timeout: float,
                 on_check: Callable[[Health], None] = lambda _: None) -> None:
        self._client = client.with_options(max_retries=0, timeout=timeout)
        self._health_url = server_root(base_url) + "/health"
        self.interval = interval
        self.on_check = on_check  # told every result (the adapters follow a restarted server)
        self.last = Health(ok=False, detail="not checked yet")
        self._task: asyncio.Task | None = None
        self._pending: asyncio.Task | None = None

    async def check(self) -> Health:
        """Up when /health says so (or, on servers without it, when the model list answers);
        a model list that fails on a healthy server only leaves `served` empty."""
        try:
            has_health = await self._health_endpoint()
        except Exception as exc:  # any failure is the server's state, reported, never raised
            self.last = Health(ok=False, detail=describe(exc))
            return self.last
        try:
            self.last = _from_models(await self._client.get("/models", cast_to=object))
        except Exception as exc:
            self.last = Health(ok=has_health, detail=f"no model list: {describe(exc)}")
        else:
            self.on_check(self.last)
        return self.last

    async def _health_endpoint(self) -> bool:
        """True for 200, False where the server has no /health (llama.cpp, Ollama)."""
        import openai

        try:
            await self._client.get(self._health_url, cast_to=str)
        except openai.NotFoundError:
            return False
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="remote-health")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    def current(self) -> Health:
        """The last result; a server that was down is asked again (in the background)."""
        stale = time.monotonic() - self.last.checked_at > RECHECK_DOWN
        if not self.last.ok and stale and (self._pending is None or self._pending.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule
                self._pending = asyncio.get_running_loop().create_task(self.check())
        return self.last

    async def close(self) -> None:
        for task in (self._task, self._pending):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _from_models(listed: Any) -> Health:
    rows = listed.get("data", []) if isinstance(listed, dict) else []
    served = tuple(str(r.get("id", "")) for r in rows if isinstance(r, dict))
    bases = tuple(str(r.get("id", "")) for r in rows if isinstance(r, dict) and not r.get("parent"))
    return Health(ok=True, served=served, base_models=bases)
