"""`python -m engines.transformer make-tiny DIR [--pretrain-steps N]`: a tiny local model."""

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
    tiny.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's choice")
    args = parser.parse_args(argv)

    import torch

    from engines.transformer.tiny import make_tiny

    if args.threads:
        torch.set_num_threads(args.threads)
    make_tiny(args.folder, args.pretrain_steps, progress=lambda line: print(line, flush=True))
    print(f"use it with:\n[engines.transformer]\nmodel = \"{args.folder.resolve()}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
