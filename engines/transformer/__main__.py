"""`python -m engines.transformer make-tiny DIR [--pretrain-steps N]`: a tiny local model;
`python -m engines.transformer import-gguf FILE_OR_FOLDER OUT [--gguf-file NAME]`: a GGUF
file as a normal model folder (dequantized to float32)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.transformer")
    commands = parser.add_subparsers(dest="command", required=True)
    tiny = commands.add_parser(
        "make-tiny", help="build a tiny Llama-architecture chat model from local text"
    )
    tiny.add_argument("folder", type=Path, help="where to save the Hugging Face folder")
    tiny.add_argument("--pretrain-steps", type=int, default=0,
                      help="pre-train on the local text for this many steps (CPU: ~0.1 s each)")
    # One thread by default: a 2M-parameter model gains little from a second, and on busy cores
    # torch's threads wait for each other (here: 1.2 s a step with one, 10 s with two).
    tiny.add_argument("--threads", type=int, default=1, help="torch threads; 0: torch's choice")
    gguf = commands.add_parser(
        "import-gguf", help="turn a GGUF file into a normal model folder (float32)")
    gguf.add_argument("source", type=Path, help="a .gguf file, or a folder holding one")
    gguf.add_argument("out", type=Path, help="where to save the Hugging Face folder")
    gguf.add_argument("--gguf-file", default="", help="which .gguf in the folder")
    args = parser.parse_args(argv)
    if args.command == "import-gguf":
        return _import_gguf(args.source, args.out, args.gguf_file)
    print("make-tiny: loading torch and transformers (seconds on a busy machine)", flush=True)

    import torch
    from transformers.utils import logging as hf_logging

    from engines.transformer.tiny import make_tiny

    hf_logging.disable_progress_bar()  # our own lines say how far it is

    if args.threads:
        torch.set_num_threads(args.threads)
    make_tiny(args.folder, args.pretrain_steps, progress=lambda line: print(line, flush=True))
    print(f"use it with:\n[engines.transformer]\nmodel = \"{args.folder.resolve()}\"")
    return 0


def _import_gguf(source: Path, out: Path, name: str) -> int:
    from engines.transformer.gguf_import import ImportFailed, find_gguf, import_gguf

    try:
        import_gguf(find_gguf(source, name), out, progress=lambda line: print(line, flush=True))
    except ImportFailed as exc:
        print(f"import-gguf: {exc}", file=sys.stderr)
        return 1
    print(f"use it with:\n[engines.transformer]\nmodel = \"{out.resolve()}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
