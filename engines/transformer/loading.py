"""Loading the model and tokenizer: device and dtype choice, and errors that say what to do."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engines.errors import one_line
from engines.transformer.download import DownloadFailed, Progress, fetch

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The model cannot be loaded; one line saying what to download or set."""


DEVICES = "\"auto\", \"cpu\", \"cuda\", \"cuda:N\" or \"mps\""


def choose_device(wanted: str) -> str:
    """The torch device for `wanted` ("auto": CUDA, then Apple MPS, then the CPU), or
    ModelUnavailable in one line when it is not a device or this torch cannot use it."""
    import torch

    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    kind, _, index = wanted.partition(":")
    if wanted not in ("cpu", "mps", "cuda") and not (kind == "cuda" and index.isdigit()):
        raise ModelUnavailable(f"device {wanted!r}: expected {DEVICES}")
    if kind == "cuda":
        _check_cuda(wanted, int(index or 0))
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ModelUnavailable("device \"mps\": this machine or torch has no Apple MPS; "
                               "set device = \"auto\" or \"cpu\"")
    return wanted


def _check_cuda(wanted: str, index: int) -> None:
    import torch

    if torch.version.cuda is None and torch.version.hip is None:
        raise ModelUnavailable(
            f"device {wanted!r}: torch {torch.__version__} is a build without CUDA: install the "
            "CUDA build that matches nvidia-smi (README: On a GPU machine), or set device = "
            "\"auto\" or \"cpu\"")
    count = torch.cuda.device_count()
    if index >= count:
        raise ModelUnavailable(
            f"device {wanted!r}: torch {torch.__version__} (CUDA {torch.version.cuda}) sees "
            f"{count} GPU(s): check nvidia-smi, the driver (it must support CUDA "
            f"{torch.version.cuda}) and CUDA_VISIBLE_DEVICES, or set device = \"cpu\"")


def choose_dtype(wanted: str, device: str) -> Any:
    """bf16 on a GPU that computes it natively, fp16 on other GPUs (T4, V100: their bf16 is
    emulated, slowly), fp32 on the CPU (fast and exact there)."""
    import torch

    if wanted != "auto":
        return getattr(torch, wanted)
    if device.startswith("cuda"):
        return torch.bfloat16 if native_bf16(device) else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def native_bf16(device: str) -> bool:
    """Whether the GPU computes bf16 itself (compute capability 8 or later, or ROCm); torch's
    is_bf16_supported() also says yes where it is only emulated."""
    import torch

    if torch.version.hip:
        return True
    return torch.cuda.get_device_properties(torch.device(device)).major >= 8


def looks_local(model: str) -> bool:
    """A path, not a hub id ("org/name"): absolute, relative with ./ or ../, or ~."""
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().is_dir()


def load(model: str, device: str, dtype: Any,
         progress: Progress | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode on `device`, or ModelUnavailable with the fix; a hub
    model not in the cache is downloaded first, its bytes reported to `progress`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if looks_local(model) and not Path(model).expanduser().is_dir():
        raise ModelUnavailable(
            f"model folder {model} does not exist: set [engines.transformer] model to a hub id or "
            "a folder (python -m engines.transformer make-tiny DIR builds a tiny one)"
        )
    try:
        where = str(Path(model).expanduser()) if looks_local(model) else fetch(model, progress)
    except DownloadFailed as exc:
        raise ModelUnavailable(str(exc)) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        lm = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(_advice(model, exc)) from exc
    if tokenizer.chat_template is None:
        raise ModelUnavailable(f"model {model} has no chat template: use an instruct/chat model")
    if tokenizer.pad_token_id is None:  # left padding needs some id; the mask hides it anyway
        tokenizer.pad_token = tokenizer.eos_token
    check_vocabulary(model, lm, tokenizer)
    return lm.to(device).eval(), tokenizer


def check_vocabulary(name: str, lm: Any, tokenizer: Any) -> None:
    """Every token id the tokenizer can produce must have a row in the embedding: on a GPU an
    id beyond it is a device-side assert that ends the process, not an error to catch."""
    rows = lm.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelUnavailable(
            f"model {name}: its tokenizer has {len(tokenizer)} tokens but its embedding only "
            f"{rows} rows: the tokenizer does not belong to these weights")


def _advice(model: str, exc: BaseException) -> str:
    first = one_line(exc)
    if looks_local(model):
        return f"model folder {model} cannot be loaded ({first})"
    return (
        f"model {model} is not on this machine and could not be downloaded ({first}): run "
        f"`hf download {model}` where there is network, or set [engines.transformer] model to "
        "a local folder (python -m engines.transformer make-tiny DIR builds a tiny one)"
    )


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends a reply: the tokenizer's and the generation config's end, and
    every special token the chat template writes around turns: the end of one and the start
    of the next (<|im_end|> and <|im_start|>; Llama 3's <|eot_id|> and <|start_header_id|>).
    A model that opens a new turn has finished its own; going on, it would write the next
    turn's role ("user", "assistant") as text, since the markers themselves are not shown."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, list) else {configured}
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
             {"role": "user", "content": "c"}]
    try:
        text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        rendered = set(tokenizer(text, add_special_tokens=False)["input_ids"])
    except Exception:  # a template that wants other turns (a system one, tools): the ends only
        log.debug("the chat template did not render a plain exchange", exc_info=True)
        rendered = set()
    added = getattr(tokenizer, "added_tokens_decoder", {})
    special = set(tokenizer.all_special_ids) | {i for i, tok in added.items() if tok.special}
    ids |= rendered & special
    return {i for i in ids if i is not None}


def context_length(model: Any, tokenizer: Any) -> int:
    """The longest sequence the model takes (tokenizers say 10**30 when they do not know)."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return min((n for n in limits if isinstance(n, int) and 0 < n < 10**7), default=2048)
