"""config.toml documents every key with its default; user files are checked key by key."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from bot.config import CORE_TABLES, ConfigError, load_config, parse_table
from bot.frontends import FRONTENDS
from engines.registry import BUILTIN, load_class
from tests.harness import ROOT, run_console


def load(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, FRONTENDS, BUILTIN)


def documented_tables() -> dict[str, type]:
    tables = dict(CORE_TABLES)
    tables |= {name: load_class(spec).Options for name, spec in FRONTENDS.items()}
    tables |= {f"engines.{name}": load_class(spec).Options for name, spec in BUILTIN.items()}
    return tables


def table_of(raw: dict, dotted: str) -> dict:
    for part in dotted.split("."):
        raw = raw.get(part, {})
    return raw


@pytest.mark.parametrize("table", sorted(documented_tables()))
def test_config_toml_documents_every_key_with_its_default(table):
    raw = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    cls = documented_tables()[table]
    defaults = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}
    assert table_of(raw, table) == defaults


def test_a_user_file_sets_only_what_it_changes(tmp_path):
    config = load(tmp_path, "[bot]\nhistory_turns = 3\n[engines.ngram]\norder = 4\n")
    assert config.bot.history_turns == 3
    assert config.bot.default_engine == "eliza" and config.policy.rate_per_minute == 20
    ngram = load_class(BUILTIN["ngram"])
    assert config.options("engines.ngram", ngram.Options).order == 4
    assert config.options("engines.ngram", ngram.Options).time_budget == 0.3


@pytest.mark.parametrize(("text", "message"), [
    ('[bot]\nhistory_turns = "many"\n', '[bot] history_turns: expected an integer, got "many"'),
    ("[bot]\nhistory_turns = true\n", "[bot] history_turns: expected an integer, got true"),
    ('[bot]\nlanguage = "fr"\n', '[bot] language: expected "en" or "de", got "fr"'),
    ("[bot]\nadmins = [1]\n", "[bot] admins[0]: expected a string, got 1"),
    ('[bot]\nadmins = ["alice"]\n', '[bot] admins: expected "platform:user_id", got "alice"'),
    ('[bot]\ndefault_engine = "gpt"\n', "[bot] default_engine: unknown engine 'gpt'"),
    ("[bot]\nhistory_turns = -1\n", "[bot] history_turns: must be at least 0, got -1"),
    ("[policy]\nmax_reply_chars = 1\n", "[policy] max_reply_chars: must be at least 100, got 1"),
    ("[privacy]\nstore_text = 1\n", "[privacy] store_text: expected true or false, got 1"),
    ("[engines.markov]\n", "[engines.markov]: unknown engine"),
    ("bot = 3\n", "[bot]: expected a table, got 3"),
    ("[bot\n", "not valid TOML"),
])
def test_mistakes_are_errors_that_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert message in str(caught.value)


def test_numbers_may_be_written_as_integers_where_floats_are_expected(tmp_path):
    assert load(tmp_path, "[bot]\nreply_timeout = 5\n").bot.reply_timeout == 5.0


def test_plugin_engines_get_their_own_tables(tmp_path):
    config = load(tmp_path, '[plugins]\nengines = { echo = "tests.engines:EchoEngine" }\n'
                  '[engines.echo]\nprefix = ">"\n')
    assert config.components["engines.echo"] == {"prefix": ">"}


@pytest.mark.parametrize("table", sorted(documented_tables()))
def test_every_default_lies_within_its_range(table):
    cls = documented_tables()[table]
    defaults = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}
    assert parse_table(table, cls, defaults) == cls()


OUT_OF_RANGE = [
    ("engines.ngram", "order = 0", "must be at least 1, got 0"),
    ("engines.ngram", "max_copy = 1", "must be at least 2, got 1"),
    ("engines.ngram", "time_budget = 0", "must be more than 0, got 0"),
    ("engines.ngram", "max_tokens = 0", "must be at least 1, got 0"),
    ("engines.transformer", "temperature = -0.1", "must be at least 0, got -0.1"),
    ("engines.transformer", "top_k = -1", "must be at least 0, got -1"),
    ("engines.transformer", "top_p = 0", "must be more than 0, got 0"),
    ("engines.transformer", "top_p = 1.5", "must be at most 1, got 1.5"),
    ("engines.transformer", "repetition_penalty = 0.0", "must be more than 0, got 0.0"),
    ("engines.transformer", "max_new_tokens = 0", "must be at least 1, got 0"),
    ("engines.transformer", "history_turns = -1", "must be at least 0, got -1"),
    ("engines.transformer", "max_batch = 0", "must be at least 1, got 0"),
    ("engines.transformer", "threads = -2", "must be at least 0, got -2"),
    ("engines.transformer", "seed = -1", "must be at least 0, got -1"),
    ("engines.eliza", "memory_limit = -1", "must be at least 0, got -1"),
    ("finetune", "every_votes = -1", "must be at least 0, got -1"),
    ("finetune", "every_hours = -0.5", "must be at least 0, got -0.5"),
    ("finetune", "min_votes = 0", "must be at least 1, got 0"),
    ("finetune", "heldout_percent = 0", "must be at least 1, got 0"),
    ("finetune", "heldout_percent = 100", "must be at most 99, got 100"),
    ("finetune", "sft_steps = -1", "must be at least 0, got -1"),
    ("finetune", "batch_size = 0", "must be at least 1, got 0"),
    ("finetune", "learning_rate = 0", "must be more than 0, got 0"),
    ("finetune", "beta = -0.1", "must be more than 0, got -0.1"),
    ("finetune", "lora_r = 0", "must be at least 1, got 0"),
    ("finetune", "max_tokens = 0", "must be at least 1, got 0"),
    ("finetune", "tolerance = -0.01", "must be at least 0, got -0.01"),
    ("finetune", "min_accuracy = 1.2", "must be at most 1, got 1.2"),
    ("finetune", "min_accuracy = -0.1", "must be at least 0, got -0.1"),
    ("finetune", "threads = -1", "must be at least 0, got -1"),
]


@pytest.mark.parametrize(("table", "line", "reason"), OUT_OF_RANGE)
def test_out_of_range_values_are_errors_that_name_the_key(tmp_path, table, line, reason):
    key = line.split(" = ")[0]
    with pytest.raises(ConfigError) as caught:
        config = load(tmp_path, f"[{table}]\n{line}\n")
        config.options(table, documented_tables()[table])  # the engines' tables, as the bot does
    assert str(caught.value) == f"[{table}] {key}: {reason}"


def test_the_ends_of_a_range_are_allowed(tmp_path):
    config = load(tmp_path, "[engines.ngram]\norder = 1\nmax_copy = 2\n"
                  "[engines.transformer]\ntemperature = 0\ntop_p = 1\n"
                  "[finetune]\nheldout_percent = 99\nmin_accuracy = 1\ntolerance = 0\n")
    ngram = config.options("engines.ngram", documented_tables()["engines.ngram"])
    transformer = config.options("engines.transformer", documented_tables()["engines.transformer"])
    assert (ngram.order, ngram.max_copy) == (1, 2)
    assert (transformer.temperature, transformer.top_p) == (0.0, 1.0)
    assert (config.finetune.heldout_percent, config.finetune.min_accuracy) == (99, 1.0)


def test_an_out_of_range_engine_option_stops_the_bot_with_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engines.ngram]\norder = 0\n", encoding="utf-8")
    done = run_console(["console", "--config", str(bad), "--data-dir", str(tmp_path / "data")],
                       ["hello"], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "eliza2llm: [engines.ngram] order: must be at least 1, got 0"
    assert done.stdout == ""
