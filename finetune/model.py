"""The engine's base model with a trainable LoRA adapter on it: a fresh one, or a copy of the
active adapter to continue from. CUDA: bf16 weights (the adapter stays fp32); CPU: fp32 with a
limited number of threads, so the bot beside the job keeps its share of the cores."""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from engines.transformer import loading
from finetune.settings import Settings


def choose_device(wanted: str) -> tuple[str, torch.dtype]:
    """("auto": CUDA, else the CPU; "cuda:N" picks a GPU) and its dtype: bf16 where the GPU
    computes it natively, else fp32 (fp16 training would need loss scaling; emulated bf16 on a
    T4 or V100 is slow). A device this torch cannot use is ModelUnavailable, in one line."""
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    device = loading.choose_device(wanted)
    if device.startswith("cuda") and loading.native_bf16(device):
        return device, torch.bfloat16
    return device, torch.float32


def free_cuda_memory(device: str) -> None:
    """Hand the GPU memory this process no longer uses back to the driver, so the bot that
    shares the GPU (or the next step of this job) can have it; torch keeps it cached otherwise."""
    if device.startswith("cuda"):
        gc.collect()
        torch.cuda.empty_cache()


def limit_threads(threads: int, processes: int = 1) -> int:
    """[finetune] threads (0: half the cores, shared by this machine's training processes)."""
    count = threads or max(1, (os.cpu_count() or 2) // 2 // processes)
    torch.set_num_threads(count)
    return count


def load_base(settings: Settings, device: str, dtype: torch.dtype) -> tuple[Any, Any]:
    free_cuda_memory(device)  # what an earlier step (training, before evaluation) left cached
    model, tokenizer = loading.load(settings.model.model, device, dtype)
    return model, tokenizer


def with_lora(base: Any, settings: Settings, parent: Path | None) -> Any:
    """`base` wrapped in a trainable adapter: the parent's weights, or fresh ones."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if parent is not None:
        model = PeftModel.from_pretrained(base, str(parent), is_trainable=True,
                                          torch_device=str(base.device))
    else:
        opts = settings.options
        config = LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha,
                            target_modules=list(opts.lora_targets), lora_dropout=0.0,
                            task_type="CAUSAL_LM")
        model = get_peft_model(base, config)
    model.train()
    return model


def base_revision(name: str, model: Any) -> str:
    """The hub commit the weights came from, or for a local folder a hash of its weights."""
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return commit
    folder = Path(name).expanduser()
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        with path.open("rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]
