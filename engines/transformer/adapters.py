"""LoRA adapters on one base model: several loaded at once, each row of a batch using its own.

The first adapter wraps the base model in a PeftModel; later ones are added beside it. A batch
may mix adapters (PEFT's `adapter_names`, "__base__" meaning none), so a swap never waits for
replies in flight: they finish with the adapter they started with.
Only the generation worker's thread calls `load` and `forward`, between forward passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
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


class AdapterSet:
    def __init__(self, model: Any) -> None:
        self.model = model  # the base model, or the PeftModel around it once one is loaded
        self.folders: dict[str, Path] = {}

    @property
    def ids(self) -> list[str]:
        return list(self.folders)

    def load(self, folder: Path, adapter_id: str) -> None:
        """Load the adapter in `folder` under `adapter_id` (a no-op if that id is loaded)."""
        if adapter_id in self.folders:
            return
        check_folder(folder)
        try:
            self._load(folder, adapter_id)
        except Exception as exc:
            if passing(exc):  # not the adapter's fault: raised as it is, nothing marked broken
                raise
            raise AdapterError(f"adapter {folder} cannot be loaded: {_one_line(exc)}") from exc
        self.folders[adapter_id] = folder

    def _load(self, folder: Path, adapter_id: str) -> None:
        from peft import PeftModel

        device = str(self.model.device)  # PEFT would read the files onto any GPU there is
        if isinstance(self.model, PeftModel):
            try:
                self.model.load_adapter(str(folder), adapter_name=adapter_id, torch_device=device)
            except Exception:
                if adapter_id in self.model.peft_config:
                    self.model.delete_adapter(adapter_id)
                raise
        else:
            try:
                self.model = PeftModel.from_pretrained(self.model, str(folder),
                                                       adapter_name=adapter_id, torch_device=device)
            except Exception:
                _strip_injected(self.model)
                raise
        self.model.eval()

    def forward(self, adapters: list[str], **inputs: Any) -> Any:
        """One forward pass; row i uses adapters[i] (BASE for none)."""
        if self.folders:
            inputs["adapter_names"] = adapters
        return self.model(**inputs, use_cache=True)


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


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
