"""What engines learn from people: each stored message as it comes, and each withdrawn one
(/forget, /optout, retention) taken back, handed to every loaded engine that learns."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from bot.store import Store
from engines.base import Capability, Written
from engines.registry import Engines

log = logging.getLogger(__name__)


def written(rows: Iterable[Sequence[str]]) -> list[Written]:
    """The store's (lang, text, person, chat) rows as engines take them."""
    return [Written(text, lang, person, chat) for lang, text, person, chat in rows]


async def learn(engines: Engines, message: Written) -> None:
    for engine in engines.loaded():
        if not engine.can(Capability.LEARNS):
            continue
        try:
            await engine.learn(message)
        except Exception:
            log.warning("engine %s failed to learn", engine.name, exc_info=True)


async def expire(store: Store, engines: Engines, older_than: float) -> int:
    """Retention: delete the messages older than a unix time, and take them back from the
    engines that learned them; returns how many messages went."""
    expiring = await store.texts_older_than(older_than)
    removed = await store.prune(older_than)
    await withdraw(engines, expiring)
    return removed


async def withdraw(engines: Engines, rows: Iterable[Sequence[str]]) -> None:
    """Take these stored messages back from every engine that learned them; none: no work."""
    messages = written(rows)
    if not messages:
        return
    for engine in engines.loaded():
        if engine.can(Capability.LEARNS):
            await engine.withdraw(messages)
