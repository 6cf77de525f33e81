"""The job's lines are what bot/job_protocol.py declares: each event `python -m finetune` prints
carries exactly the fields of its TypedDict, so the bot (bot/jobs.py), reading by those names,
finds them."""

from __future__ import annotations

import json
from typing import get_type_hints

from bot import job_protocol as said
from bot.adapters import MANIFEST
from finetune.__main__ import main
from tests.finetune_helpers import DB, finetune_toml, seed_sync, taste_rows
from tests.tiny_model import tiny_model_dir


def fields(declared: type) -> set[str]:
    return set(get_type_hints(declared))


def test_export_promote_and_rollback_print_the_declared_fields(root, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    config = tmp_path / "tiny.toml"
    config.write_text(finetune_toml(tiny_model_dir(root)), encoding="utf-8")
    seed_sync(tmp_path / "data" / DB, taste_rows(12))
    folder = tmp_path / "data" / "adapters" / "a1"
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text(json.dumps({"id": "a1"}))

    def last_line(*argv: str) -> dict:
        assert main([*argv, "--data-dir", "data", "--config", str(config)]) == 0
        return json.loads(capsys.readouterr().out.splitlines()[-1])

    for argv, declared in ((["export"], said.Exported), (["promote", "a1"], said.Promoted),
                           (["rollback"], said.RolledBack),
                           (["rollback"], said.NothingToRollBack)):
        line = last_line(*argv)
        assert set(line) == fields(declared), argv
        assert line["event"] == get_type_hints(declared)["event"].__args__[0]


def test_the_store_reads_the_accuracy_where_the_protocol_says_the_job_writes_it():
    from bot.store import Adapter

    judged = Adapter("a", "tiny", "/nowhere", "candidate",
                     {"evaluation": {"new": {"accuracy": 0.75}}})
    assert judged.accuracy == said.held_out_accuracy(judged.metrics) == 0.75
    assert Adapter("b", "tiny", "/nowhere", "trained", {}).accuracy is None
