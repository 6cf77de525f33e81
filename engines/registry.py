"""The engines of one bot, by name: imported up front (lazily by spec), each started on first use.

A new engine is one module and one line in BUILTIN; anyone's own engine is named in
`[plugins] engines` the same way.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

from engines.base import Engine, EngineSetup, EngineUnavailable, NoOptions
from engines.errors import one_line

log = logging.getLogger(__name__)

# name -> "module:Class". A new engine is one module and one line here.
BUILTIN: dict[str, str] = {
    "eliza": "engines.eliza.engine:ElizaEngine",
    "ngram": "engines.ngram.engine:NgramEngine",
    "transformer": "engines.transformer.engine:TransformerEngine",
    "remote": "engines.remote.engine:RemoteEngine",
}


def load_class(spec: str) -> type:
    """Import "module:Class" and return the class."""
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass
class _Slot:
    cls: type[Engine] | None
    options: Any = None
    engine: Engine | None = None
    starting: Engine | None = None  # while it loads: its progress() says how far it got
    task: asyncio.Task | None = None
    error: str = ""


class Engines:
    """The engines of one bot: imported up front, each started on first use (the default at once).

    A failure to import or to start marks that engine unavailable with its reason; it never
    raises out of here except as EngineUnavailable to whoever asked for that engine.
    """

    def __init__(self, slots: dict[str, _Slot], setup: EngineSetup) -> None:
        self._slots = slots
        self._setup = setup

    @classmethod
    def from_specs(
        cls,
        specs: dict[str, str],
        setup: EngineSetup,
        parse_options: Callable[[str, type], Any],
    ) -> Engines:
        """Import each engine class and parse its options (config errors propagate)."""
        slots: dict[str, _Slot] = {}
        for name, spec in specs.items():
            try:
                engine_cls = load_class(spec)
            except Exception as exc:  # a broken engine must not take the bot down
                log.warning("engine %s cannot be imported: %s", name, exc)
                slots[name] = _Slot(None, error=f"cannot be imported: {one_line(exc)}")
                continue
            options = parse_options(name, getattr(engine_cls, "Options", NoOptions))
            slots[name] = _Slot(cast("type[Engine]", engine_cls), options)
        return cls(slots, setup)

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    def begin_start(self, name: str) -> None:
        """Start loading `name` in the background, if it is not loading or loaded already."""
        slot = self._slots.get(name)
        if slot is None or slot.cls is None or slot.task is not None:
            return
        slot.task = asyncio.create_task(self._start(name, slot), name=f"engine-start-{name}")

    async def _start(self, name: str, slot: _Slot) -> None:
        assert slot.cls is not None, "begin_start starts only slots with a class"
        engine_setup = replace(self._setup, data_dir=self._setup.data_dir / "engines" / name)
        try:
            engine_setup.data_dir.mkdir(parents=True, exist_ok=True)
            engine = slot.starting = slot.cls(slot.options, engine_setup)
            await engine.start()
        except Exception as exc:
            slot.error = one_line(exc)
            # One line on the console; the traceback only with -v (debug), where it helps.
            log.warning("engine %s cannot start: %s", name, slot.error)
            log.debug("engine %s failed to start", name, exc_info=True)
            return
        finally:
            slot.starting = None
        slot.engine = engine

    async def get(self, name: str) -> Engine:
        """The started engine, waiting for it to load; EngineUnavailable if it cannot be had."""
        slot = self._slots.get(name)
        if slot is None:
            raise EngineUnavailable(f"unknown engine {name!r}")
        missing = self._missing(slot) if slot.engine is None else ""
        if missing:  # not installed: say how to install it, not the ImportError
            raise EngineUnavailable(missing)
        self.begin_start(name)
        if slot.task is not None:
            await asyncio.shield(slot.task)
        if slot.engine is None:
            raise EngineUnavailable(slot.error or "not available")
        info = slot.engine.info()
        if not info.ready:
            raise EngineUnavailable(info.detail or "not ready")
        return slot.engine

    def loaded(self) -> list[Engine]:
        return [s.engine for s in self._slots.values() if s.engine is not None]

    def status(self, name: str) -> tuple[str, str, str]:
        """("ready" | "loading" | "idle" | "unavailable" | "not_installed", version, detail) for
        /engines: the detail says what a ready engine is made of (its corpora, its model), or
        why not ("idle": installed, loads on first use; "not_installed": how to install it)."""
        slot = self._slots[name]
        if slot.engine is not None:
            info = slot.engine.info()
            return ("ready" if info.ready else "unavailable", info.version, info.detail)
        if slot.error or slot.cls is None:
            return ("unavailable", "", slot.error)
        if slot.task is not None and not slot.task.done():
            return ("loading", "", slot.starting.progress() if slot.starting else "")
        missing = self._missing(slot)
        return ("not_installed", "", missing) if missing else ("idle", "", "")

    def _missing(self, slot: _Slot) -> str:
        check = getattr(slot.cls, "missing", None)  # a plugin may not subclass Engine
        try:
            return check(slot.options) if check is not None else ""
        except Exception as exc:  # a plugin's check must not break /engines
            return one_line(exc)

    async def start_when_asked(self, wait: float) -> None:
        """Start the engines that are cheap to start and say more once started (the remote
        engine's health check), waiting up to `wait` seconds for them: /engines and /readyz
        then tell "server down" from "loads on first use"."""
        asked = {name: slot for name, slot in self._slots.items()
                 if getattr(slot.cls, "start_when_asked", False)}
        for name, slot in asked.items():
            if not self._missing(slot):
                self.begin_start(name)
        tasks = [s.task for s in asked.values() if s.task is not None and not s.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=wait)

    async def close(self) -> None:
        for slot in self._slots.values():
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()
            if slot.engine is not None:
                try:
                    await slot.engine.close()
                except Exception:
                    log.warning("engine %s failed to close", slot.engine.name, exc_info=True)
