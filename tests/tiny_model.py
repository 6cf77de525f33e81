"""The tiny transformer and two LoRA adapters for it, built once per test session on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download: a hub id must fail, not fetch
os.environ["TRANSFORMERS_OFFLINE"] = "1"

_built: dict[str, Path] = {}


def tiny_model_dir(root: Path) -> Path:
    """An untrained tiny model (seconds to build): enough to test batching, streaming, swaps."""
    if "model" not in _built:
        import torch

        from engines.transformer.tiny import make_tiny

        torch.set_num_threads(1)
        _built["model"] = make_tiny(root / "tiny", pretrain_steps=0, progress=lambda _: None)
    return _built["model"]


def adapter_dir(root: Path, name: str, seed: int) -> Path:
    """A LoRA adapter with random (not zero) weights, so it visibly changes the replies."""
    if name not in _built:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir(root))
        config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                            init_lora_weights=False)
        folder = root / "adapters" / name
        get_peft_model(base, config).save_pretrained(folder)
        _built[name] = folder
    return _built[name]
