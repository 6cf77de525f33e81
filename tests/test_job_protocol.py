"""The job's lines are what bot/job_protocol.py declares: each event `python -m finetune` prints
carries exactly the fields of its TypedDict, so the bot (bot/jobs.py), reading by those names,
finds them."""

from __future__ import annotations

import asyncio
import json
from typing import get_type_hints

from bot import job_protocol as said
from bot.adapters import MANIFEST
from bot.store import Adapter, Store
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


def test_a_whole_run_prints_the_declared_fields_and_the_store_keeps_the_accuracy_it_printed(
        root, tmp_path, monkeypatch, capsys):
    """What do_evaluate and _run really write (the evaluated line is the verdict merged into a
    dict, which can drift from its TypedDict), and the store's accuracy is the one printed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    config = tmp_path / "tiny.toml"
    config.write_text(finetune_toml(tiny_model_dir(root), heldout_percent=50,
                                     gate_prompts=2, gate_max_new_tokens=4), encoding="utf-8")
    seed_sync(tmp_path / "data" / DB, taste_rows(16))
    assert main(["run", "--data-dir", "data", "--config", str(config)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    last = {line.get("event", "step"): line for line in lines}
    for name, declared in (("step", said.Step), (said.TRAINED, said.Trained),
                           (said.JUDGED, said.Judged), (said.EVALUATED, said.Evaluated),
                           (said.DONE, said.Done)):
        assert declared.__required_keys__ <= set(last[name]) <= fields(declared), name
    accuracy = last[said.DONE]["accuracy"]
    assert isinstance(accuracy, float) and accuracy == last[said.EVALUATED]["new"]["accuracy"]

    async def stored() -> Adapter | None:
        store = await Store.open(tmp_path / "data" / DB)
        try:
            return next(a for a in await store.adapters() if a.id == last[said.DONE]["adapter"])
        finally:
            await store.close()

    adapter = asyncio.run(stored())
    assert adapter is not None and adapter.accuracy == accuracy
