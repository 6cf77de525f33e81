"""What engines learn from people: each stored message as it comes, and each withdrawn one
(/forget, /optout, retention) taken back, handed to every loaded engine that learns."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

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


async def withdraw(engines: Engines, rows: Iterable[Sequence[str]]) -> None:
    """Take these stored messages back from every engine that learned them; none: no work."""
    messages = written(rows)
    if not messages:
        return
    for engine in engines.loaded():
        if engine.can(Capability.LEARNS):
            await engine.withdraw(messages)
