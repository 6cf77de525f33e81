"""Loading the model and tokenizer: device and dtype choice, and errors that say what to do."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The model cannot be loaded; one line saying what to download or set."""


def choose_device(wanted: str) -> str:
    import torch

    if wanted != "auto":
        return wanted
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def choose_dtype(wanted: str, device: str) -> Any:
    """bf16 on a GPU that has it, fp16 on other GPUs, fp32 on the CPU (fast and exact there)."""
    import torch

    if wanted != "auto":
        return getattr(torch, wanted)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def looks_local(model: str) -> bool:
    """A path, not a hub id ("org/name"): absolute, relative with ./ or ../, or ~."""
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().is_dir()


def load(model: str, device: str, dtype: Any) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode on `device`, or ModelUnavailable with the fix."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if looks_local(model) and not Path(model).expanduser().is_dir():
        raise ModelUnavailable(
            f"model folder {model} does not exist: set [engines.transformer] model to a hub id or "
            "a folder (python -m engines.transformer make-tiny DIR builds a tiny one)"
        )
    try:
        where = str(Path(model).expanduser()) if looks_local(model) else fetch(model)
        tokenizer = AutoTokenizer.from_pretrained(where)
        lm = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(_advice(model, exc)) from exc
    if tokenizer.chat_template is None:
        raise ModelUnavailable(f"model {model} has no chat template: use an instruct/chat model")
    if tokenizer.pad_token_id is None:  # left padding needs some id; the mask hides it anyway
        tokenizer.pad_token = tokenizer.eos_token
    return lm.to(device).eval(), tokenizer


# What a causal LM folder needs; the hub's copies in other formats (onnx, gguf) stay there.
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


def fetch(model: str) -> str:
    """The local folder of a hub model: the cache's copy, or one download into the cache.

    One attempt, not one per file the loaders ask for: without network the hub client retries
    each request for about 20 s, and its warnings would flood the console.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()
    try:
        return snapshot_download(model, allow_patterns=MODEL_FILES, local_files_only=True)
    except LocalEntryNotFoundError:
        log.warning("downloading %s from the Hugging Face hub (once, into its cache)", model)
    try:
        return snapshot_download(model, allow_patterns=MODEL_FILES)
    except Exception as exc:  # no network, no such repo, gated: all say the same to a user
        raise OSError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from exc


def _advice(model: str, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if looks_local(model):
        return f"model folder {model} cannot be loaded ({first})"
    return (
        f"model {model} is not on this machine and could not be downloaded ({first}): run "
        f"`hf download {model}` where there is network, or set [engines.transformer] model to "
        "a local folder (python -m engines.transformer make-tiny DIR builds a tiny one)"
    )


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends a reply: the tokenizer's and the generation config's."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, list) else {configured}
    return {i for i in ids if i is not None}


def context_length(model: Any, tokenizer: Any) -> int:
    """The longest sequence the model takes (tokenizers say 10**30 when they do not know)."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return min((n for n in limits if isinstance(n, int) and 0 < n < 10**7), default=2048)
