"""`python -m finetune` by hand, as the README lists the steps: each step's exact line from
README.md run on the tiny model, its output and exit code checked; unknown ids and folders the
store does not know; the migration that brought the "trained" status."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sqlite3

import pytest

from bot.store import MIGRATIONS, Adapter, Store
from bot.store import migrations as store_module
from finetune.__main__ import main
from tests.finetune_helpers import DB, finetune_toml, seed_sync, taste_rows
from tests.harness import ROOT
from tests.tiny_model import adapter_dir, tiny_model_dir


@pytest.fixture
def workdir(root, tmp_path, monkeypatch):
    """A folder as a user has it after the quickstart: data/tiny.toml (the README's lines name
    it with --config), here with a few steps on the tests' tiny model."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tiny.toml").write_text(finetune_toml(tiny_model_dir(root)),
                                                 encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def readme_steps() -> dict[str, str]:
    """The README's `python -m finetune STEP ... --data-dir data` lines, by step."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = re.findall(r"^ {4}(python -m finetune .+?)\s+#", readme, flags=re.M)
    return {shlex.split(line)[3]: line for line in lines}


def step(capsys, line: str, adapter: str = "") -> tuple[int, list[str], str]:
    """Run one README line in-process: (exit code, stdout lines, stderr)."""
    argv = [adapter if word == "ID" else word for word in shlex.split(line)[3:]]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def statuses(workdir) -> dict[str, str]:
    with sqlite3.connect(workdir / "data" / DB) as db:
        return dict(db.execute("SELECT id, status FROM adapters"))


def test_the_readme_steps_one_by_one_export_train_promote_status_rollback(workdir, capsys):
    steps = readme_steps()
    assert list(steps) == ["export", "train", "evaluate", "promote", "status", "rollback"]
    seed_sync(workdir / "data" / DB, taste_rows(12))

    code, out, _ = step(capsys, steps["export"])
    exported = json.loads(out[-1])
    assert code == 0 and exported["event"] == "exported"
    assert exported["kto"] + exported["heldout"] == 12

    code, out, _ = step(capsys, steps["train"])
    adapter, trained = out[-1], json.loads(out[-2])
    assert code == 0 and (trained["event"], trained["adapter"]) == ("trained", adapter)
    assert (workdir / "data" / "adapters" / adapter / "adapter_config.json").exists()
    assert statuses(workdir) == {adapter: "trained"}  # registered, not active

    code, out, _ = step(capsys, steps["promote"], adapter)  # no evaluation needed
    assert code == 0 and json.loads(out[-1]) == {"event": "promoted", "adapter": adapter}
    assert statuses(workdir) == {adapter: "active"}

    code, out, err = step(capsys, steps["status"])
    [row] = [json.loads(line) for line in out]
    assert code == 0 and (row["id"], row["status"], row["lineage"]) == (adapter, "active",
                                                                        [adapter])
    assert err == ""

    code, out, _ = step(capsys, steps["rollback"])
    assert code == 0
    assert json.loads(out[-1]) == {"event": "rolled_back", "retired": adapter, "active": "base"}
    assert statuses(workdir) == {adapter: "retired"}

    code, out, _ = step(capsys, steps["rollback"])  # the base model serves: nothing to undo
    assert code == 0 and json.loads(out[-1])["event"] == "nothing_to_roll_back"
    assert statuses(workdir) == {adapter: "retired"}


def test_an_unknown_id_is_one_line_and_exit_2_for_promote_and_evaluate(workdir, capsys):
    steps = readme_steps()
    for name in ("promote", "evaluate"):
        code, out, err = step(capsys, steps[name], "ft0-nonesuch")
        assert code == 2 and out == []
        assert err.count("\n") == 1 and "no adapter 'ft0-nonesuch'" in err, err
        assert "known: none yet" in err and "Traceback" not in err
    code, _, err = step(capsys, steps["promote"], "")
    assert code == 2 and err.strip() == "python -m finetune promote ID: which adapter?"


def test_a_model_that_is_not_there_is_one_line_and_exit_2(workdir, capsys):
    config = workdir / "data" / "tiny.toml"
    config.write_text(finetune_toml(workdir / "no-such-model"), encoding="utf-8")
    seed_sync(workdir / "data" / DB, taste_rows(12))
    steps = readme_steps()
    assert step(capsys, steps["export"])[0] == 0
    code, _, err = step(capsys, steps["train"])
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("python -m finetune train: model folder ") and "make-tiny" in err


def test_status_lists_folders_the_store_does_not_know_and_promote_registers_them(
    workdir, root, capsys
):
    adapters = workdir / "data" / "adapters"
    adapters.mkdir(parents=True)
    shutil.copytree(adapter_dir(root, "a1", seed=1), adapters / "copied")
    (adapters / "copied" / "manifest.json").write_text(json.dumps(
        {"id": "a1", "base_model": str(tiny_model_dir(root)), "parent": ""}))
    (adapters / ".partial-ft0-x").mkdir()  # a killed job's leftover: never listed
    steps = readme_steps()

    code, out, err = step(capsys, steps["status"])
    assert code == 0
    assert [json.loads(line)["status"] for line in out] == ["unregistered"]
    assert "not registered in the store: copied" in err and "no adapters yet" not in err

    code, _, _ = step(capsys, steps["promote"], "copied")
    assert code == 0 and statuses(workdir) == {"copied": "active"}
    code, out, err = step(capsys, steps["status"])
    assert [(r["id"], r["status"]) for r in map(json.loads, out)] == [("copied", "active")]
    assert err == ""


async def test_the_trained_status_migration_keeps_every_adapter(tmp_path, monkeypatch):
    path = tmp_path / DB
    step = next(i for i, m in enumerate(MIGRATIONS) if m.__name__ == "m004_adapter_trained")
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:step])  # a database from before
    old = await Store.open(path)
    await old.add_adapter(Adapter("a", "tiny", "/x/a", "retired", {"reason": "r"}))
    await old.add_adapter(Adapter("b", "tiny", "/x/b", "candidate", {}))
    # as the code of that time promoted (today's also clears rolled_back_at, a later column)
    await old.db.execute("UPDATE adapters SET status = 'active', promoted_at = 1 WHERE id = 'b'")
    await old.db.commit()
    with pytest.raises(sqlite3.IntegrityError):
        await old.add_adapter(Adapter("c", "tiny", "/x/c", "trained", {}))
    await old.close()

    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    store = await Store.open(path)
    try:
        kept = {a.id: (a.status, a.reason, a.promoted_at is not None)
                for a in await store.adapters()}
        assert kept == {"a": ("retired", "r", False), "b": ("active", "", True)}
        await store.add_adapter(Adapter("c", "tiny", "/x/c", "trained", {}))
        with pytest.raises(sqlite3.IntegrityError):
            await store.add_adapter(Adapter("d", "tiny", "/x/d", "bogus", {}))
        assert await store.active_adapter() == "b"
    finally:
        await store.close()
