"""python -m bot [console|discord|telegram ...] [--config PATH] [--data-dir DIR]"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from bot.app import App, choose_frontends
from bot.config import ConfigError, load_config
from bot.frontends import FRONTENDS
from engines.registry import BUILTIN

DEFAULT_CONFIG = Path("config.toml")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line and exit 2, no usage dump
        print(f"eliza2llm: {message} (see python -m bot --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m bot", description="Run the eliza2llm chat bot.")
    parser.add_argument(
        "frontends", nargs="*", metavar="FRONTEND",
        help=f"any of {', '.join(FRONTENDS)}; default: every platform with a token in the "
        "environment, and the console when there is none or stdin is a terminal",
    )
    parser.add_argument("--config", type=Path, help="a config.toml (default: ./config.toml)")
    parser.add_argument("--data-dir", help="where the database, models and adapters live")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    return parser.parse_args(argv)


def setup_logging(data_dir: Path, verbose: bool, chat_on_terminal: bool) -> None:
    """Logs go to stderr, except while someone chats on this terminal: then to data/bot.log,
    so that warnings (a download retrying, say) do not land in the middle of the chat."""
    handler: logging.Handler = logging.StreamHandler()
    if chat_on_terminal and sys.stdin.isatty():
        data_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(data_dir / "bot.log", encoding="utf-8")
    logging.basicConfig(
        level=logging.WARNING, handlers=[handler],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if verbose:  # our own code only: the HTTP libraries would log tokens and message payloads
        for name in ("bot", "engines", "finetune"):
            logging.getLogger(name).setLevel(logging.DEBUG)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config_path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    try:
        config = load_config(config_path, FRONTENDS, BUILTIN, data_dir=args.data_dir)
        names = choose_frontends(args.frontends, dict(os.environ), sys.stdin.isatty())
        setup_logging(config.data_dir, args.verbose, chat_on_terminal="console" in names)
        app = App(config, names)
    except ConfigError as exc:
        print(f"eliza2llm: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(app.run())
    except ConfigError as exc:  # found only on connecting, e.g. a token the platform refuses
        print(f"eliza2llm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
