"""config.toml documents every key with its default; user files are checked key by key."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from bot.config import CORE_TABLES, ConfigError, load_config
from bot.frontends import FRONTENDS
from engines.base import BUILTIN, load_class
from tests.conftest import ROOT


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
