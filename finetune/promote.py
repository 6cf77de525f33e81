"""Which adapter serves: the adapters table is the truth; adapters/ACTIVE mirrors it as a file
so that the transformer engine finds the active adapter when it starts, without SQL.

Cheap to import (no torch): the bot's /rollback uses it too.
"""

from __future__ import annotations

from pathlib import Path

from bot.store import Store

ACTIVE_FILE = "ACTIVE"


def write_active(adapters_dir: Path, adapter_id: str) -> None:
    """Record the active adapter for the engine's next start ("" for the base model)."""
    adapters_dir.mkdir(parents=True, exist_ok=True)
    path = adapters_dir / ACTIVE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(adapter_id + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: the engine never reads half a name


async def promote(store: Store, adapters_dir: Path, adapter_id: str) -> None:
    await store.promote(adapter_id)
    write_active(adapters_dir, adapter_id)


async def rollback(store: Store, adapters_dir: Path) -> tuple[str, str]:
    """Back to the adapter promoted before the active one. Returns (retired, now active)."""
    retired, active = await store.rollback()
    if retired:
        write_active(adapters_dir, active)
    return retired, active
