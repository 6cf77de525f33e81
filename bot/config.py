"""config.toml -> frozen, validated options. Unknown keys and wrong types are errors naming the key.

The core tables are declared here; each engine and frontend declares its own table as an
`Options` dataclass on its class, checked with the same `parse_table`. Secrets never come from
the file, only from the environment.
"""

from __future__ import annotations

import json
import shlex
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

DB_FILE = "eliza2llm.sqlite3"
DATASET_DIR = "finetune/dataset"  # a job's exported votes; /forget deletes it
# The environment variable with each platform's token (secrets never come from the file); a
# platform not named here needs none.
TOKEN_ENV = {"telegram": "TELEGRAM_TOKEN", "discord": "DISCORD_TOKEN"}


class ConfigError(Exception):
    """A bad configuration; the message is one line that names the key."""


def at_least(low: float) -> Any:
    """Field metadata: a value below `low` is a config error (a negative history, say)."""
    return {"min": low}


def more_than(low: float) -> Any:
    """Field metadata: a value of `low` or below is a config error (a learning rate of 0)."""
    return {"above": low}


def between(low: float, high: float) -> Any:
    """Field metadata: a value outside `low`..`high`, both included, is a config error.

    Engines must not import the bot, so they write the same metadata as plain dicts:
    `field(default=3, metadata={"min": 1})`, `{"above": 0}`, `{"min": 0, "max": 1}`."""
    return {"min": low, "max": high}


@dataclass(frozen=True)
class BotOptions:
    data_dir: str = "data"
    default_engine: str = "eliza"
    language: Literal["en", "de"] = "en"
    admins: list[str] = field(default_factory=list)  # "platform:user_id"
    history_turns: int = field(default=12, metadata=at_least(0))
    reply_timeout: float = field(default=120.0, metadata=at_least(0.1))
    drain_seconds: float = field(default=10.0, metadata=at_least(0))
    max_backlog: int = field(default=20, metadata=at_least(0))  # messages waiting per chat


@dataclass(frozen=True)
class PolicyOptions:
    rate_per_minute: int = field(default=20, metadata=at_least(0))
    max_reply_chars: int = field(default=12000, metadata=at_least(100))
    # Compute budgets, per person, in tokens scored or generated (README: Limits and access).
    budget_tokens: int = field(default=60000, metadata=at_least(0))
    budget_per_minute: int = field(default=20000, metadata=at_least(0))
    max_input_chars: int = field(default=4096, metadata=at_least(1))
    max_probe_alternatives: int = field(default=10, metadata=at_least(2))


ACCESS_KINDS = ("user", "chat", "server", "role")


@dataclass(frozen=True)
class AccessOptions:
    """Who may use the bot: "platform:kind:id" entries (bot/access.py decides)."""

    allow: list[str] = field(default_factory=list)  # empty: everyone not blocked
    block: list[str] = field(default_factory=list)  # wins over allow
    private_chats: bool = True  # false: answer in groups only (bot admins everywhere)

    def __post_init__(self) -> None:
        for key in ("allow", "block"):
            for entry in getattr(self, key):
                platform, kind, ident = [*entry.split(":", 2), "", ""][:3]
                if not platform or kind not in ACCESS_KINDS or not ident:
                    raise ConfigError(
                        f'[access] {key}: expected "platform:kind:id" with kind '
                        f'{", ".join(ACCESS_KINDS)} (e.g. "telegram:user:42"), got {_show(entry)}')


@dataclass(frozen=True)
class FeedbackOptions:
    up: list[str] = field(default_factory=lambda: ["👍", "❤️", "🔥", "👏", "😂"])
    down: list[str] = field(default_factory=lambda: ["👎", "💩", "🤮", "😡"])


@dataclass(frozen=True)
class PrivacyOptions:
    store_text: bool = True
    retention_days: int = field(default=0, metadata=at_least(0))
    # what answers other chats (the n-gram's shared counts, fine-tuning data) learns a word
    # sequence only once this many distinct people wrote it
    k_people: int = field(default=3, metadata=at_least(1))


@dataclass(frozen=True)
class FinetuneOptions:
    every_votes: int = field(default=0, metadata=at_least(0))
    every_hours: float = field(default=0.0, metadata=at_least(0))
    min_votes: int = field(default=20, metadata=at_least(1))
    heldout_percent: int = field(default=20, metadata=between(1, 99))
    continue_from_active: bool = True
    base_model_gated: bool = False  # the job gets the hub's token (HF_TOKEN) only when true
    preference: Literal["kto", "dpo"] = "kto"
    sft_steps: int = field(default=30, metadata=at_least(0))
    preference_steps: int = field(default=30, metadata=at_least(0))
    batch_size: int = field(default=8, metadata=at_least(1))
    learning_rate: float = field(default=0.0005, metadata=more_than(0))
    beta: float = field(default=0.1, metadata=more_than(0))
    lora_r: int = field(default=8, metadata=at_least(1))
    lora_alpha: int = field(default=16, metadata=at_least(1))
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj",
                                                             "o_proj"])
    max_tokens: int = field(default=256, metadata=at_least(1))
    tolerance: float = field(default=0.02, metadata=at_least(0))
    min_accuracy: float = field(default=0.6, metadata=between(0, 1))
    kl_weight: float = field(default=0.5, metadata=at_least(0))
    max_kl: float = field(default=0.5, metadata=more_than(0))
    max_fluency_ratio: float = field(default=1.5, metadata=more_than(0))
    gate_prompts: int = field(default=24, metadata=at_least(0))
    gate_max_new_tokens: int = field(default=32, metadata=at_least(1))
    reward_min_heldout: int = field(default=30, metadata=at_least(2))
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N": checked when a job starts
    threads: int = field(default=0, metadata=at_least(0))
    cpu_watts: float = field(default=65.0, metadata=at_least(0))
    gpu_watts: float = field(default=300.0, metadata=at_least(0))
    seed: int = field(default=0, metadata=at_least(0))
    guard_min_votes: int = field(default=30, metadata=at_least(1))
    guard_alpha: float = field(default=0.05, metadata=between(0, 0.5))
    guard_min_people: int = field(default=5, metadata=at_least(2))
    watch_seconds: float = field(default=60.0, metadata=more_than(0))
    micro_batch_size: int = field(default=0, metadata=at_least(0))
    launcher: str = ""  # a command prefix for `python -m finetune run`; "": a local process

    def __post_init__(self) -> None:
        try:
            shlex.split(self.launcher)
        except ValueError as exc:  # an unclosed quote
            raise ConfigError(f"[finetune] launcher: {exc}: {_show(self.launcher)}") from None


@dataclass(frozen=True)
class PluginOptions:
    engines: dict[str, str] = field(default_factory=dict)  # name -> "module:Class"


@dataclass(frozen=True)
class ServerOptions:
    listen: str = ""  # "host:port" for /healthz and /metrics (port 0: any free one); "": off

    def __post_init__(self) -> None:
        if self.listen:
            self.address  # noqa: B018 -- a bad address is an error when the file is read

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ConfigError(f'[server] listen: expected "host:port" such as '
                              f'"127.0.0.1:9108", got {_show(self.listen)}')
        return host.strip("[]"), int(port)


CORE_TABLES: dict[str, type] = {
    "bot": BotOptions,
    "policy": PolicyOptions,
    "access": AccessOptions,
    "feedback": FeedbackOptions,
    "privacy": PrivacyOptions,
    "finetune": FinetuneOptions,
    "plugins": PluginOptions,
    "server": ServerOptions,
}


@dataclass(frozen=True)
class Config:
    bot: BotOptions
    policy: PolicyOptions
    feedback: FeedbackOptions
    privacy: PrivacyOptions
    finetune: FinetuneOptions
    plugins: PluginOptions
    server: ServerOptions = field(default_factory=ServerOptions)
    access: AccessOptions = field(default_factory=AccessOptions)
    # "engines.NAME" and frontend tables as written; their owners parse them with `options`.
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "built-in defaults"

    def options(self, table: str, cls: type) -> Any:
        return parse_table(table, cls, self.components.get(table, {}))

    @property
    def data_dir(self) -> Path:
        return Path(self.bot.data_dir)

    @property
    def db_file(self) -> Path:
        return self.data_dir / DB_FILE

    @property
    def dataset_dir(self) -> Path:
        return self.data_dir / DATASET_DIR

    @property
    def adapters_dir(self) -> Path:
        """One folder per adapter id, shared by the bot, its engines and fine-tuning jobs."""
        return self.data_dir / "adapters"


def load_config(
    path: Path | None,
    frontends: typing.Iterable[str] | None = None,
    engines: typing.Iterable[str] | None = None,
    data_dir: str | None = None,
) -> Config:
    """Read a user's file (keys it leaves out keep their defaults) and check its shape.

    The bot names its frontends and engines, so that a table for none of them is an error;
    a reader that does not know them (a fine-tuning job) passes None and checks only the
    core tables, leaving the others to their owners."""
    raw = _read_toml(path) if path is not None else {}
    raw_engines = raw.pop("engines", {})
    if not isinstance(raw_engines, dict):
        raise ConfigError("engines: expected a table of [engines.NAME] tables")
    core = {name: parse_table(name, cls, raw.pop(name, {})) for name, cls in CORE_TABLES.items()}
    components = {name: raw.pop(name) for name in list(raw)
                  if frontends is None or name in set(frontends)}
    if raw:
        known = ", ".join(sorted([*CORE_TABLES, *(frontends or ()), "engines"]))
        raise ConfigError(f"[{next(iter(raw))}]: unknown table (known: {known})")
    known_engines = None if engines is None else [*engines, *core["plugins"].engines]
    for name, table in raw_engines.items():
        if known_engines is not None and name not in known_engines:
            known = ", ".join(known_engines)
            raise ConfigError(f"[engines.{name}]: unknown engine (known: {known})")
        components[f"engines.{name}"] = table
    if data_dir is not None:
        core["bot"] = _replace(core["bot"], data_dir=data_dir)
    config = Config(**core, components=components, source=str(path or "built-in defaults"))
    _check_cross_references(config, known_engines)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _check_cross_references(config: Config, engines: list[str] | None) -> None:
    if engines is not None and config.bot.default_engine not in engines:
        raise ConfigError(
            f"[bot] default_engine: unknown engine {config.bot.default_engine!r} "
            f"(known: {', '.join(engines)})"
        )
    for admin in config.bot.admins:
        if ":" not in admin:
            raise ConfigError(f'[bot] admins: expected "platform:user_id", got "{admin}"')


def _replace(obj: Any, **changes: Any) -> Any:
    return type(obj)(**{f.name: getattr(obj, f.name) for f in fields(obj)} | changes)


def parse_table(table: str, cls: type, raw: Any) -> Any:
    """Build the frozen options `cls` from a TOML table, or raise ConfigError naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"[{table}]: expected a table, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in hints:
            raise ConfigError(f"[{table}] {key}: {_unknown_key_reason(key, hints)}")
    values = {key: _check(f"[{table}] {key}", hints[key], value) for key, value in raw.items()}
    for option in fields(cls):
        if option.name in values:
            _check_range(f"[{table}] {option.name}", option.metadata, values[option.name],
                         raw[option.name])
    return cls(**values)


def _check_range(where: str, limits: Any, value: Any, raw: Any) -> None:
    """The field's metadata "min" (value >= min), "above" (value > above), "max" (value <= max)."""
    if "min" in limits and value < limits["min"]:
        raise ConfigError(f"{where}: must be at least {limits['min']}, got {_show(raw)}")
    if "above" in limits and value <= limits["above"]:
        raise ConfigError(f"{where}: must be more than {limits['above']}, got {_show(raw)}")
    if "max" in limits and value > limits["max"]:
        raise ConfigError(f"{where}: must be at most {limits['max']}, got {_show(raw)}")


def _unknown_key_reason(key: str, hints: dict[str, Any]) -> str:
    if "token" in key.lower() or "secret" in key.lower():
        return "unknown key; secrets are read from the environment, never from the file"
    return f"unknown key (known: {', '.join(hints) or 'none'})"


def _check(where: str, hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            choices = " or ".join(json.dumps(a) for a in args)
            raise ConfigError(f"{where}: expected {choices}, got {_show(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        return [_check(f"{where}[{i}]", args[0], v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {_show(value)}")
        return {k: _check(f"{where}.{k}", args[1], v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        return _check_union(where, args, value)
    return _check_scalar(where, hint, value)


def _check_union(where: str, args: tuple[Any, ...], value: Any) -> Any:
    for arg in args:
        try:
            return _check(where, arg, value)
        except ConfigError:
            continue
    raise ConfigError(f"{where}: expected {' or '.join(_NAMES.get(a, str(a)) for a in args)}, "
                      f"got {_show(value)}")


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_scalar(where: str, hint: Any, value: Any) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if ok is None:
        raise TypeError(f"{where}: unsupported option type {hint!r}")
    if not ok:
        raise ConfigError(f"{where}: expected {_NAMES[hint]}, got {_show(value)}")
    return float(value) if hint is float else value


def _show(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)
