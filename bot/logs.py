"""The bot's log lines: plain text, or one JSON object per line (`--log-format json`) for a log
collector; either way with the chat, engine, version and job they concern where known, and
never a secret from the environment.

Fields come from `extra={"engine": ...}` on a log call, or from `fields(...)` around the code
that handles a chat: a contextvar, so every line logged in that task (and the tasks it starts)
carries them. Lines from an engine's own modules (`engines.NAME...`) carry that engine.

What never goes in: message text (nothing logs it; tests/test_logs.py holds that) and tokens
(every value of an environment variable named like a secret, or named by the config as
holding one, is replaced before a line is written, whatever library logged it, also as JSON
or Python's repr write it: a secret with a `"` or `\\` in it is escaped there).
"""

from __future__ import annotations

import contextlib
import datetime as dtm
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from bot.files import private_file

FIELDS = ("chat", "engine", "version", "job")
OUR_LOGGERS = ("bot", "engines", "finetune")
LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD)$", re.IGNORECASE)
SHORTEST_SECRET = 8  # shorter values ("1", "true") would redact ordinary words
REDACTED = "[redacted]"

_fields: ContextVar[Mapping[str, str]] = ContextVar("log_fields",
                                                   default=MappingProxyType({}))


@contextlib.contextmanager
def fields(**values: object) -> Iterator[None]:
    """Log lines within this block, and in tasks started in it, carry these fields."""
    known = {key: str(value) for key, value in values.items() if value not in (None, "")}
    token = _fields.set(MappingProxyType({**_fields.get(), **known}))
    try:
        yield
    finally:
        _fields.reset(token)


class WithFields(logging.Filter):
    """Puts the fields known where a line was logged on its record (extra= ones win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _fields.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        if not hasattr(record, "engine") and record.name.startswith("engines."):
            record.engine = record.name.split(".")[1]
        return True


def known_fields(record: logging.LogRecord) -> dict[str, str]:
    return {key: str(getattr(record, key)) for key in FIELDS
            if getattr(record, key, None) not in (None, "")}


class TextFormatter(logging.Formatter):
    """The classic line, with the known fields after it: `... [chat=telegram:5 engine=echo]`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        known = known_fields(record)
        if not known:
            return line
        first, newline, rest = line.partition("\n")  # the fields before any traceback
        tags = " ".join(f"{key}={value}" for key, value in known.items())
        return f"{first} [{tags}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the known fields, and the
    traceback (as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dtm.datetime.fromtimestamp(record.created, dtm.UTC)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **known_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class Redacting(logging.Formatter):
    """Another formatter's lines with every secret replaced."""

    def __init__(self, inner: logging.Formatter, secrets: list[str]) -> None:
        super().__init__()
        self.inner = inner
        # Twice: a logged repr or JSON body is escaped once more in our JSON lines.
        written = {twice for secret in secrets for once in _written_forms(secret)
                   for twice in _written_forms(once)}
        self.secrets = sorted(written, key=len, reverse=True)  # a longer one first

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


def _written_forms(secret: str) -> set[str]:
    """The secret as it may appear in a line: as is, escaped inside a JSON string (our JSON
    lines, a library logging a request body) and inside a Python repr (a logged dict)."""
    return {secret, json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1],
            repr(secret)[1:-1], repr(secret).replace('"', "'")[1:-1]}


def secrets_in(env: Mapping[str, str], names: Iterable[str] = ()) -> list[str]:
    """The values of environment variables named like secrets (TELEGRAM_TOKEN, VLLM_API_KEY),
    and of those in `names` whatever they are called (`[engines.remote] api_key_env`)."""
    named = set(names)
    return [value for name, value in env.items()
            if (SECRET_NAME.search(name) or name in named) and len(value) >= SHORTEST_SECRET]


def prepared(target: logging.Handler, log_format: LogFormat,
             env: Mapping[str, str], secret_names: Iterable[str] = ()) -> logging.Handler:
    """`target` set up to write lines in `log_format`, with their fields, without secrets."""
    inner = JsonFormatter() if log_format == "json" else TextFormatter()
    target.setFormatter(Redacting(inner, secrets_in(env, secret_names)))
    target.addFilter(WithFields())
    return target


def setup(data_dir: Path, *, verbose: bool, chat_on_terminal: bool,
          log_format: LogFormat = "text", env: Mapping[str, str] | None = None,
          secret_names: Iterable[str] = ()) -> None:
    """Logs go to stderr, except while someone chats on this terminal: then to data/bot.log,
    so that warnings (a download retrying, say) do not land in the middle of the chat."""
    target: logging.Handler = logging.StreamHandler()
    if chat_on_terminal and sys.stdin.isatty():
        target = logging.FileHandler(private_file(data_dir / "bot.log"), encoding="utf-8")
    logging.basicConfig(level=logging.WARNING,
                        handlers=[prepared(target, log_format, os.environ if env is None else env,
                                           secret_names)])
    # Python's warnings (a library's FutureWarning) are log lines too: with the chat on this
    # terminal they go to the log file instead of into the conversation.
    logging.captureWarnings(True)
    # Our own lines from INFO (what started, where it listens), debug with -v; the libraries'
    # from WARNING only: the HTTP libraries would log message payloads.
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
