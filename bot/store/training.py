"""Fine-tuning jobs (queued, running, done or failed) and the adapters they make."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from bot.job_protocol import held_out_accuracy
from bot.store.connection import Connection, row_id
from bot.store.people import User


@dataclass(frozen=True)
class Adapter:
    id: str
    base_model: str
    path: str
    status: str  # trained (not judged yet), candidate, active, rejected or retired
    metrics: dict[str, Any]
    job_id: int | None = None
    promoted_at: float | None = None
    rolled_back_at: float | None = None  # set by a rollback; promoted_at stays beside it

    # The metrics' shape is the job's, declared in bot/job_protocol.py.
    @property
    def accuracy(self) -> float | None:
        """Held-out accuracy of the adapter's implicit reward, if it was judged."""
        return held_out_accuracy(self.metrics)

    @property
    def broken(self) -> str:
        """Why the adapter could not be loaded the last time an engine tried ("" if it could):
        the engine serves the base model instead, and the guard and jobs leave it alone."""
        return str(self.metrics.get("broken", ""))

    @property
    def reason(self) -> str:
        """Why it was promoted or rejected, in one line."""
        return self.metrics.get("reason") or self.metrics.get("evaluation", {}).get("reason", "")


class Training(Connection):
    # jobs -------------------------------------------------------------------------------------

    async def add_job(self, kind: str, requested_by: User | None) -> int:
        row = await self._exec(
            "INSERT INTO jobs (kind, status, requested_by, created_at) VALUES (?, 'queued', ?, ?)",
            (kind, requested_by.id if requested_by else None, time.time()),
        )
        return row_id(row.lastrowid)

    async def job_started(self, job_id: int, pid: int) -> None:
        await self._exec("UPDATE jobs SET status = 'running', pid = ?, started_at = ?"
                         " WHERE id = ?", (pid, time.time(), job_id))

    async def job_finished(self, job_id: int, ok: bool, detail: str,
                           adapter_id: str | None = None) -> None:
        await self._exec(
            "UPDATE jobs SET status = ?, detail = ?, adapter_id = ?, finished_at = ? WHERE id = ?",
            ("done" if ok else "failed", detail, adapter_id, time.time(), job_id),
        )

    async def fail_unfinished_jobs(self, detail: str) -> list[tuple[int, int | None]]:
        """Jobs left queued or running by a bot that stopped: they can never report back.
        Returns (job id, the id of the person who asked for it) of each."""
        async with self._lock:  # a write: kept out of another coroutine's transaction
            rows = await self.db.execute_fetchall(
                "UPDATE jobs SET status = 'failed', detail = ?, finished_at = ?"
                " WHERE status IN ('queued', 'running') RETURNING id, requested_by",
                (detail, time.time()))
        return [(job_id, by) for job_id, by in rows]

    async def last_job_time(self) -> float:
        row = await self._one("SELECT COALESCE(MAX(created_at), 0) FROM jobs")
        return row[0]

    # adapters ---------------------------------------------------------------------------------

    async def add_adapter(self, adapter: Adapter) -> None:
        await self._exec(
            "INSERT OR REPLACE INTO adapters (id, base_model, path, status, metrics, job_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, (SELECT id FROM jobs WHERE id = ?), ?)",
            (adapter.id, adapter.base_model, adapter.path, adapter.status,
             json.dumps(adapter.metrics), adapter.job_id, time.time()),
        )

    async def adapters(self) -> list[Adapter]:
        rows = await self._all(
            "SELECT id, base_model, path, status, metrics, job_id, promoted_at, rolled_back_at"
            " FROM adapters ORDER BY created_at DESC, id DESC")
        return [Adapter(r[0], r[1], r[2], r[3], json.loads(r[4] or "{}"), *r[5:]) for r in rows]

    async def active_adapter(self) -> str:
        """The id of the active adapter; "" for the base model (also while the active one is
        broken: nothing can serve it, train on top of it or judge it)."""
        row = await self._one("SELECT id FROM adapters WHERE status = 'active'"
                              " AND json_extract(metrics, '$.broken') IS NULL")
        return row[0] if row else ""

    async def mark_adapter_broken(self, adapter_id: str, why: str) -> bool:
        """An engine could not load it (see Adapter.broken); False for an unknown id. Kept in
        its metrics, so its status (active, say) stays what the history says."""
        cursor = await self._exec(
            "UPDATE adapters SET metrics = json_set(COALESCE(metrics, '{}'), '$.broken', ?)"
            " WHERE id = ?", (why, adapter_id))
        return cursor.rowcount == 1

    async def promote(self, adapter_id: str) -> None:
        """Make `adapter_id` the active adapter; the one active before is retired. One promoted
        again after a rollback loses its rollback time."""
        async with self._write():
            await self.db.execute("UPDATE adapters SET status = 'retired' WHERE status = 'active'")
            cursor = await self.db.execute(
                "UPDATE adapters SET status = 'active', promoted_at = ?, rolled_back_at = NULL,"
                " metrics = json_remove(COALESCE(metrics, '{}'), '$.broken')"  # tried afresh
                " WHERE id = ?", (time.time(), adapter_id))
            if cursor.rowcount != 1:
                raise KeyError(f"no adapter {adapter_id!r}")

    async def replaced(self, adapter_id: str) -> str:
        """The adapter that `adapter_id` replaced when it was promoted, the one a rollback
        reinstates: the latest promoted before it and not rolled back ("" for the base model,
        or when `adapter_id` was never promoted)."""
        row = await self._one("SELECT promoted_at FROM adapters WHERE id = ?", (adapter_id,))
        if row is None or row[0] is None:
            return ""
        return await self._promoted_before(row[0])

    async def _promoted_before(self, promoted_at: float) -> str:
        row = await self._one(
            "SELECT id FROM adapters WHERE status = 'retired' AND rolled_back_at IS NULL"
            " AND promoted_at < ? ORDER BY promoted_at DESC LIMIT 1", (promoted_at,))
        return row[0] if row else ""

    async def rollback(self, only: str = "", why: dict[str, Any] | None = None
                       ) -> tuple[str, str]:
        """Retire the active adapter, with the time and `why` (merged into its metrics: "reason"
        is what /adapters shows), and reactivate the one it replaced ("" for the base model).
        With `only`, nothing happens unless that adapter is the active one (an admin may have
        promoted or rolled back meanwhile). Returns (retired id, now active id); ("", "") when
        nothing was rolled back."""
        async with self._write():
            active = await self._one(
                "SELECT id, promoted_at, metrics FROM adapters WHERE status = 'active'")
            if active is None or (only and active[0] != only):
                return "", ""
            before = await self._promoted_before(active[1]) if active[1] is not None else ""
            metrics = json.loads(active[2] or "{}") | (why or {})
            await self.db.execute(
                "UPDATE adapters SET status = 'retired', rolled_back_at = ?, metrics = ?"
                " WHERE id = ?", (time.time(), json.dumps(metrics), active[0]))
            if before:
                await self.db.execute("UPDATE adapters SET status = 'active' WHERE id = ?",
                                      (before,))
        return active[0], before
