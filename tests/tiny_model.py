"""The tiny transformer and two LoRA adapters for it, built once per test session on the CPU."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


@contextlib.asynccontextmanager
async def greedy_engine(root: Path, tmp_path: Path, max_new_tokens: int) -> AsyncIterator[Any]:
    """The tiny model's engine, greedy (deterministic) and never stopping early, so every
    reply has its full length. The untrained model repeats one token forever; a strong
    penalty makes it vary them. On the CPU in fp32 even on a GPU machine: tests compare greedy
    tokens of batched and solo runs exactly, and bf16 rounding flips near-ties
    (tests/test_cuda.py checks CUDA)."""
    from engines.base import EngineSetup
    from engines.transformer.engine import TransformerEngine, TransformerOptions

    options = TransformerOptions(model=str(tiny_model_dir(root)), device="cpu", threads=1,
                                 temperature=0.0, repetition_penalty=3.0,
                                 max_new_tokens=max_new_tokens)
    engine = TransformerEngine(options, EngineSetup(tmp_path / "engines" / "transformer"))
    await engine.start()
    engine.worker.eos_ids = set()
    try:
        yield engine
    finally:
        await engine.close()
