"""python -m bot [console|discord|telegram|platforms ...] [--config PATH] [--data-dir DIR] [-v]
[--log-format text|json]"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from bot import logs
from bot.app import PLATFORMS, App, choose_frontends
from bot.config import ConfigError, load_config
from bot.frontends import FRONTENDS
from engines.errors import typed_line
from engines.registry import BUILTIN

DEFAULT_CONFIG = Path("config.toml")
PRIVATE_UMASK = 0o077


def program_name(argv0: str) -> str:
    """How the user started us: `eliza2llm` (the console script) or `python -m bot`."""
    name = Path(argv0).name
    return "python -m bot" if name in ("__main__.py", "") else name


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's, editable installs included)."""
    try:
        return importlib.metadata.version("eliza2llm")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that is not installed
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one clear line and exit 2, no usage dump
        print(f"eliza2llm: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog=program_name(sys.argv[0]), description="Run the eliza2llm chat bot.")
    parser.add_argument("--version", action="version",
                        version=f"eliza2llm {package_version()}")
    parser.add_argument(
        "frontends", nargs="*", metavar="FRONTEND",
        help=f"any of {', '.join(FRONTENDS)}, or {PLATFORMS} (every platform with a token in "
        "the environment, never the console: none is an error); default: every platform with "
        "a token, and the console when there is none or stdin is a terminal",
    )
    parser.add_argument("--config", type=Path, help="a config.toml (default: ./config.toml)")
    parser.add_argument("--data-dir", help="where the database, models and adapters live")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="json: one JSON object per log line, for a log collector")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Everything the bot and its jobs write holds people's words or is made from them: private
    # to this user (folders 0700, files 0600), whichever library writes it (an engine's
    # snapshot, a log), whatever umask the bot was started with.
    os.umask(PRIVATE_UMASK)
    try:
        return run(args)
    except ConfigError as exc:  # a bad config, or found on connecting: a token refused
        print(f"eliza2llm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # anything else that ends the bot: one line; the trace with -v
        if args.verbose:
            traceback.print_exc()
        print(f"eliza2llm: {typed_line(exc)}"
              + ("" if args.verbose else " (-v shows where)"), file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    config_path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    config = load_config(config_path, FRONTENDS, BUILTIN, data_dir=args.data_dir)
    names = choose_frontends(args.frontends, dict(os.environ), sys.stdin.isatty())
    # The remote engine's key may sit in a variable of any name: it is a secret all the same.
    key_env = str(config.components.get("engines.remote", {}).get("api_key_env", ""))
    logs.setup(config.data_dir, verbose=args.verbose, chat_on_terminal="console" in names,
               log_format=args.log_format, secret_names=[key_env] if key_env else [])
    return asyncio.run(App(config, names).run())


if __name__ == "__main__":
    sys.exit(main())
