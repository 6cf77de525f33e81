"""A GGUF file (llama.cpp's format) as a normal Hugging Face model folder, dequantized.

transformers reads a GGUF that it knows the architecture of (with the `gguf` package installed)
and dequantizes it to float32, but the model it gives carries a quantization config and
refuses `save_pretrained`. Built again from its config without that, with the same weights, it
saves as any other folder: weights, tokenizer, chat template, and a note of where it came from.
The weights are the GGUF's: a 4-bit file gives the original model's weights rounded to 4 bits,
so figures measured with them differ slightly from the original's.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engines.errors import one_line

log = logging.getLogger(__name__)

NOTE = "IMPORTED.md"  # the note of where the weights came from, in the folder made


class ImportFailed(Exception):
    """The GGUF cannot be imported; one line saying why and what to do."""


def find_gguf(file_or_folder: Path, name: str = "") -> Path:
    """The GGUF file meant: the file itself, `name` in the folder, or the folder's only one."""
    if file_or_folder.is_file():
        return file_or_folder
    if not file_or_folder.is_dir():
        raise ImportFailed(f"{file_or_folder} is neither a GGUF file nor a folder")
    if name:
        path = file_or_folder / name
        if not path.is_file():
            raise ImportFailed(f"{path} does not exist")
        return path
    found = sorted(file_or_folder.glob("*.gguf"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ImportFailed(f"{file_or_folder} has {len(found)} GGUF files ({names}): "
                           "name one with --gguf-file")
    return found[0]


def import_gguf(gguf: Path, out: Path, progress=print) -> Path:
    """Write the model folder `out` from the GGUF file `gguf`; returns `out`."""
    try:
        import gguf as _gguf  # noqa: F401  transformers' GGUF reader needs it
    except ModuleNotFoundError as exc:
        raise ImportFailed("the gguf package is not installed: .venv/bin/pip install "
                           "gguf (make smol installs the pinned one)") from exc
    progress(f"reading {gguf} (dequantizing to float32)")
    model, tokenizer = _read(gguf)
    progress(f"saving {out}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / NOTE).write_text(note(gguf, _file_type(gguf)), encoding="utf-8")
    return out


def _read(gguf: Path) -> tuple[Any, Any]:
    """(a float32 model without quantization config, its tokenizer) from the GGUF file."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:  # an architecture transformers lacks
        raise ImportFailed(f"transformers cannot read {gguf}: {one_line(exc)}") from exc
    config = AutoConfig.for_model(**_plain(loaded.config.to_dict()))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")}  # tied to the embedding
    if set(missing) - tied or unexpected:
        raise ImportFailed(f"{gguf}: weights do not fit the model's config "
                           f"(missing {sorted(set(missing) - tied)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]})")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    if tokenizer.chat_template is None:
        log.warning("%s has no chat template: the transformer engine needs one", gguf)
    return model.eval(), tokenizer


def _plain(config: dict) -> dict:
    """The config without what makes it a quantized one."""
    return {k: v for k, v in config.items() if k not in ("quantization_config", "dtype")}


def _file_type(gguf: Path) -> str:
    """The GGUF's quantization ("MOSTLY_Q4_1"), or "" if the file does not say."""
    from gguf import GGUFReader, LlamaFileType

    field = GGUFReader(gguf).fields.get("general.file_type")
    if field is None:
        return ""
    value = int(field.parts[field.data[0]][0])
    try:
        return LlamaFileType(value).name
    except ValueError:
        return str(value)


def note(gguf: Path, file_type: str) -> str:
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    kind = f" ({file_type})" if file_type else ""
    return (
        f"# Imported from GGUF\n\n"
        f"- source: `{gguf.resolve()}`\n"
        f"- sha256: `{digest}`, {gguf.stat().st_size} bytes\n"
        f"- quantization{kind}: dequantized to float32 by transformers' GGUF reader; the "
        f"weights are the file's, i.e. the original model's rounded by that quantization. "
        f"Figures measured with them differ slightly from the original's: say so.\n"
        f"- made by: `python -m engines.transformer import-gguf` on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
    )
