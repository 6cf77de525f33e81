"""LoRA adapters on one base model: several loaded at once, each row of a batch using its own.

The first adapter wraps the base model in a PeftModel; later ones are added beside it. A batch
may mix adapters (PEFT's `adapter_names`, "__base__" meaning none), so a swap never waits for
replies in flight: they finish with the adapter they started with. A batch whose rows all use
one adapter (the usual case) has it set instead: PEFT's mixed path indexes each LoRA layer's
input with Python lists, a host-to-device sync per layer and step on a GPU.

Loading has two halves: `prepare` reads the folder (config and weights, onto the model's
device) on any thread; `inject` adds the prepared adapter to the model on the generation
worker's thread, between two forward passes, so a running batch is not held up by the disk.
Beyond `limit` adapters the least recently used go again (never one the caller keeps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.errors import one_line

PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
MIXED = "__mixed__"  # the selection while rows use different adapters (adapter_names)
UNKNOWN = ""  # the selection after PEFT changed the model (a load, an eviction)
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


class AdapterError(Exception):
    """An adapter folder that cannot be used; the message says which and why, in one line."""


def check_folder(folder: Path) -> None:
    """Refuse a folder that is not a PEFT adapter before PEFT touches the model."""
    if not folder.is_dir():
        raise AdapterError(f"adapter folder {folder} does not exist")
    config = folder / "adapter_config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(
            f"adapter folder {folder} has no readable adapter_config.json "
            f"({type(exc).__name__}); it is not a PEFT adapter (saved with save_pretrained)"
        ) from None
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise AdapterError(f"adapter folder {folder} has no {' or '.join(WEIGHT_FILES)}")


@dataclass
class Prepared:
    """An adapter read from its folder, ready to be injected: its PEFT config and weights."""

    adapter_id: str
    folder: Path
    config: Any
    weights: dict[str, Any]


class AdapterSet:
    def __init__(self, model: Any, limit: int = 8) -> None:
        self.model = model  # the base model, or the PeftModel around it once one is loaded
        self.limit = limit  # adapters kept loaded at most; the least recently used go
        self.folders: dict[str, Path] = {}
        self.unloaded: dict[str, Path] = {}  # evicted adapters' folders: a pin loads them again
        self.mixed_passes = 0  # forward passes that went through PEFT's mixed-batch path
        # what the LoRA layers compute now: an adapter, PEFT_BASE or MIXED
        self._selected = PEFT_BASE
        self._used: dict[str, int] = {}  # adapter -> the forward pass that last used it
        self._passes = 0

    @property
    def ids(self) -> list[str]:
        return list(self.folders)

    def load(self, folder: Path, adapter_id: str, keep: frozenset[str] = frozenset()) -> list[str]:
        """Both halves on the calling thread (tests, a bench); the adapters evicted."""
        if adapter_id in self.folders:
            return []
        return self.inject(self.prepare(folder, adapter_id), keep)

    def prepare(self, folder: Path, adapter_id: str) -> Prepared:
        """Read an adapter folder (any thread): AdapterError if it is not a usable adapter."""
        check_folder(folder)
        try:
            from peft import PeftConfig
            from peft.utils import load_peft_weights

            config = PeftConfig.from_pretrained(str(folder))
            config.inference_mode = True
            weights = load_peft_weights(str(folder), device=str(self.model.device))
        except Exception as exc:
            if passing(exc):  # not the adapter's fault: raised as it is, nothing marked broken
                raise
            raise _refused(folder, exc) from exc
        return Prepared(adapter_id, folder, config, weights)

    def inject(self, prepared: Prepared, keep: frozenset[str] = frozenset()) -> list[str]:
        """Add a prepared adapter to the model (the worker's thread, between passes), then
        unload the least recently used beyond `limit`, except those in `keep` and this one.
        Returns the ids unloaded (their kept prompt beginnings are stale)."""
        adapter_id = prepared.adapter_id
        if adapter_id in self.folders:
            return []
        try:
            self._inject(prepared)
        except Exception as exc:
            if passing(exc):
                raise
            raise _refused(prepared.folder, exc) from exc
        self.folders[adapter_id] = prepared.folder
        self._used[adapter_id] = self._passes
        return self._evict(keep | {adapter_id})

    def _inject(self, prepared: Prepared) -> None:
        from peft import PeftModel, set_peft_model_state_dict

        name = prepared.adapter_id
        self._selected = UNKNOWN  # PEFT may change the active adapter and the layers' state
        if isinstance(self.model, PeftModel):
            try:
                self.model.add_adapter(name, prepared.config)
                set_peft_model_state_dict(self.model, prepared.weights, adapter_name=name)
            except Exception:
                if name in self.model.peft_config:
                    self.model.delete_adapter(name)
                raise
        else:
            base = self.model
            try:
                model = PeftModel(base, prepared.config, adapter_name=name)
                set_peft_model_state_dict(model, prepared.weights, adapter_name=name)
            except Exception:
                _strip_injected(base)
                raise
            self.model = model
        self.model.eval()

    def _evict(self, keep: frozenset[str]) -> list[str]:
        evicted = []
        while len(self.folders) > self.limit:
            idle = [a for a in self.folders if a not in keep]
            if not idle:
                break
            oldest = min(idle, key=lambda a: self._used.get(a, -1))
            self.model.delete_adapter(oldest)
            self.unloaded[oldest] = self.folders.pop(oldest)
            self._used.pop(oldest, None)
            self._selected = UNKNOWN  # PEFT chose another active adapter
            evicted.append(oldest)
        return evicted

    def forward(self, adapters: list[str], use_cache: bool = True, **inputs: Any) -> Any:
        """One forward pass; row i uses adapters[i] (PEFT_BASE for none). `use_cache`: False for a
        pass that does not decode (scoring), so no KV cache is built."""
        self._passes += 1
        if self.folders:
            names = set(adapters)
            for name in names:
                self._used[name] = self._passes
            if len(names) == 1:
                self._select(adapters[0])
            else:
                self._select(MIXED)
                self.mixed_passes += 1
                inputs["adapter_names"] = adapters
        return self.model(**inputs, use_cache=use_cache)

    def select(self, adapter: str) -> None:
        """Make the model compute `adapter` (PEFT_BASE: none) for passes that call it directly."""
        if self.folders:
            self._used[adapter] = self._passes
            self._select(adapter)

    def _select(self, adapter: str) -> None:
        """Make the LoRA layers compute `adapter` (PEFT_BASE: none; MIXED: each row's own, from
        adapter_names); a no-op when they already do, so a steady batch pays nothing."""
        if adapter == self._selected:
            return
        if adapter == PEFT_BASE:
            self.model.base_model.disable_adapter_layers()
        else:
            if self._selected in (PEFT_BASE, UNKNOWN):
                self.model.base_model.enable_adapter_layers()
            if adapter != MIXED:
                self.model.set_adapter(adapter, inference_mode=True)
        self._selected = adapter


def _refused(folder: Path, exc: BaseException) -> AdapterError:
    return AdapterError(f"adapter {folder} cannot be loaded: {one_line(exc)}")


def passing(exc: BaseException) -> bool:
    """A failure of the moment (memory full: torch's OutOfMemoryError, CUDA's "out of memory")
    rather than of the adapter's files: loading it again later may work."""
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "out of memory" in str(exc).lower())


def _strip_injected(model: Any) -> None:
    """Undo what a failed first load left in the base model: PEFT wraps its layers in place
    before it reads the weights, so weights cut short would leave random LoRA layers in the
    model that every reply then runs through. Each wrapped layer goes back to the layer it
    wraps."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer) and name:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    if hasattr(model, "peft_config"):
        del model.peft_config
