"""The learning loop end to end on the tiny model: votes in the console, /retrain as a separate
process with progress, the new adapter serving, /rollback; and the ways a job can end badly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
from pathlib import Path

from bot.events import Incoming
from bot.i18n import t
from bot.store import Adapter, Store
from tests.finetune_helpers import DB, finetune_toml, seed, taste_rows
from tests.harness import HEAVY_WAIT, RecordingSink, heavy, job_row, run_console, say
from tests.tiny_model import adapter_dir, tiny_model_dir


def private_modes(folder: Path) -> set[int]:
    """The modes of `folder` and everything in it."""
    return {stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def query(data, sql: str) -> list[tuple]:
    with sqlite3.connect(data / DB) as db:
        return db.execute(sql).fetchall()


@heavy
def test_votes_retrain_new_adapter_serves_then_rollback_through_the_console(root, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[bot]\ndefault_engine = "transformer"\n'
                      + finetune_toml(tiny_model_dir(root), heldout_percent=50))
    (tmp_path / "data").mkdir(mode=0o755)  # as a container's volume: there, and not private
    lines = []
    for n in range(1, 13):
        lines += [f"hello number {n}", "/good" if n % 2 == 0 else "/bad"]
    lines += ["/retrain", "hello again", "/adapters", "/rollback", "and again"]
    done = run_console(["console", "--config", str(config), "--data-dir", "data"], lines,
                       cwd=tmp_path, timeout=HEAVY_WAIT)
    assert done.returncode == 0, done.stderr
    data = tmp_path / "data"
    [(job_status, adapter)] = query(data, "SELECT status, adapter_id FROM jobs")
    assert job_status == "done" and adapter
    assert "step 4/4" in done.stdout and f"New adapter {adapter} is active" in done.stdout
    assert f"Loss curve of {adapter}: data/adapters/{adapter}/loss_curve.png" in done.stdout
    assert f"Rolled back: {adapter} is retired, base serves again." in done.stdout
    versions = dict(query(data, "SELECT q.text, r.engine_version FROM messages r JOIN messages q"
                                " ON q.id = r.reply_to WHERE r.role = 'bot'"))
    assert versions["hello number 12"] == "base"
    assert versions["hello again"] == adapter and versions["and again"] == "base"
    assert query(data, "SELECT status FROM adapters") == [("retired",)]
    manifest = json.loads((data / "adapters" / adapter / "manifest.json").read_text())
    assert private_modes(data / "adapters") == {0o700, 0o600}  # every folder, every file
    assert manifest["privacy"]["k_people"] == 3  # what the k-people rule did to the export
    assert manifest["base_model"] == str(tiny_model_dir(root))
    assert manifest["base_revision"].startswith("sha256:")
    assert manifest["counts"]["kto"] + manifest["counts"]["heldout"] == 12
    assert manifest["message_ids"]["trained"] and manifest["device"] == "cpu"
    assert "estimate" in manifest["energy"]["note"] and manifest["energy"]["watt_hours"] > 0
    assert manifest["hyperparameters"]["sft_steps"] == 2
    assert (data / "adapters" / adapter / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    card = (data / "adapters" / adapter / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "More Information Needed" not in card
    assert f"# Adapter {adapter}" in card and "SFT then KTO" in card
    assert "Verdict: promoted" in card and "95% lower bound" in card and "estimate" in card
    assert f"{len(manifest['message_ids']['trained'])} voted replies" in card


async def test_retrain_from_someone_not_an_admin_is_refused(serve, sink):
    async with serve() as router:
        await router.handle(Incoming("telegram", "c1", "u1", "/retrain"), sink)
        assert "admins only" in sink.final
        assert await router.store.last_job_time() == 0


@heavy
async def test_a_job_killed_mid_training_leaves_the_old_adapter_serving(serve, root, tmp_path):
    data = tmp_path / "data"
    (data / "adapters").mkdir(parents=True)
    shutil.copytree(adapter_dir(root, "a1", seed=1), data / "adapters" / "a1")
    await seed(data / DB, taste_rows(12))
    body = finetune_toml(tiny_model_dir(root), sft_steps=500)  # echo answers the chat
    async with serve(body) as router:
        await router.store.add_adapter(Adapter("a1", "tiny", str(data / "adapters" / "a1"),
                                               "active", {}))
        engine = await router.engines.get("transformer")  # it asks which adapter is active
        assert engine.version == "a1"

        meanwhile: list[str] = []

        class KillingSink(RecordingSink):
            """At the first training step: the chat goes on, a second job is refused, and
            then the job is killed."""

            async def update(self, text: str) -> None:
                await super().update(text)
                if "step" in text and router.services.jobs.process is not None and not meanwhile:
                    meanwhile.append(await ask("hello while training"))
                    meanwhile.append(await ask("/retrain"))
                    os.kill(router.services.jobs.process.pid, signal.SIGKILL)

        async def ask(text: str, sink=None) -> str:  # as the console's operator
            return (await say(router, text, "c", "me", "console", sink=sink)).final

        sink = KillingSink()
        text = await ask("/retrain", sink)
        assert "failed (killed by signal 9)" in text and "active adapter stays" in text
        assert any("step 1/" in update for update in sink.updates)
        assert meanwhile == ["echo: hello while training", t("en", "retrain_busy")]
        job = await job_row(router.store, 1)
        assert job["status"] == "failed" and "killed" in job["detail"]
        assert engine.version == "a1" and await router.store.active_adapter() == "a1"
    assert sorted(p.name for p in (data / "adapters").iterdir()) == ["a1"]


async def test_too_few_votes_end_the_job_early_without_an_adapter(serve, root, tmp_path):
    await seed(tmp_path / "data" / DB, taste_rows(3))
    async with serve(finetune_toml(tiny_model_dir(root))) as router:
        text = await router.services.jobs.retrain(None, RecordingSink(), "en")
        assert "Not enough votes yet: 3 voted replies, 6 needed" in text
        assert (await job_row(router.store, 1))["status"] == "done"
        assert await router.store.adapters() == []
    assert not (tmp_path / "data" / "adapters").exists()


async def test_a_job_running_when_the_bot_died_is_marked_failed_at_the_next_start(serve, tmp_path):
    store = await Store.open(tmp_path / "data" / DB)
    job = await store.add_job("finetune", None)
    await store.job_started(job, pid=999999)
    await store.close()
    async with serve() as router:
        found = await job_row(router.store, job)
        assert found["status"] == "failed" and "stopped" in found["detail"]


async def test_the_scheduler_is_due_after_enough_new_votes(serve, tmp_path):
    async with serve("[finetune]\nevery_votes = 3\n") as router:
        router.services.jobs.started_at = 0
        assert not await router.services.jobs.due()
        await seed(tmp_path / "data" / DB, taste_rows(1))  # two votes
        assert not await router.services.jobs.due()
        await seed(tmp_path / "data" / DB, taste_rows(1))
        assert await router.services.jobs.due()
        await router.store.add_job("finetune", None)  # counting starts again after a job
        assert not await router.services.jobs.due()


async def test_rollback_walks_back_through_the_promotions(tmp_path):
    store = await Store.open(tmp_path / DB)
    try:
        for name in ("a", "b", "c"):
            await store.add_adapter(Adapter(name, "tiny", str(tmp_path / name), "candidate", {}))
            await store.promote(name)
        assert await store.rollback() == ("c", "b")
        assert await store.rollback() == ("b", "a")
        assert await store.rollback() == ("a", "")
        assert await store.rollback() == ("", "")
        assert await store.active_adapter() == ""
    finally:
        await store.close()


async def test_adapter_pins_the_chat_and_reset_keeps_the_pin(serve, sink):
    async with serve() as router:
        await router.store.add_adapter(Adapter("a1", "tiny", "/nowhere", "active", {}))

        async def ask(text: str) -> str:  # as the console's operator
            return (await say(router, text, "c", "me", "console")).final

        assert "Usage" in await ask("/adapter nope")
        assert "adapter a1" in await ask("/adapter a1")
        await ask("/reset")
        chat = await router.store.chat("console", "c")
        assert chat.adapter == "a1"
        assert "follows the active" in await ask("/adapter off")
        assert chat.adapter == ""
    async with serve() as router:  # read back from the database
        assert (await router.store.chat("console", "c")).adapter == ""


async def test_a_chat_pinned_to_an_adapter_is_answered_by_it_even_after_a_restart(root, tmp_path):
    from engines.base import Conversation, EngineSetup
    from engines.transformer.engine import TransformerEngine, TransformerOptions

    adapters = tmp_path / "adapters"
    for name, seed_ in (("a1", 1), ("a2", 2)):
        shutil.copytree(adapter_dir(root, name, seed=seed_), adapters / name)

    async def active() -> str:
        return "a1"

    engine = TransformerEngine(
        TransformerOptions(model=str(tiny_model_dir(root)), threads=1, max_new_tokens=2),
        EngineSetup(tmp_path / "engines" / "transformer", adapters_dir=adapters,
                      active_adapter=active))
    await engine.start()
    try:
        async def version(adapter: str = "") -> str:
            conv = Conversation("t:c", "hi", adapter=adapter)
            _ = [delta async for delta in engine.reply(conv)]
            return conv.version

        assert engine.loaded_adapters == ["a1"]
        assert await version() == "a1"
        assert await version(adapter="a2") == "a2"  # loaded on first use, not activated
        assert await version(adapter="base") == "base" and engine.version == "a1"
        assert await version(adapter="gone") == "a1"
    finally:
        await engine.close()


@heavy
def test_a_job_ends_itself_when_the_bot_that_started_it_dies(root, tmp_path):
    import subprocess
    import sys
    import time

    from tests.finetune_helpers import seed_sync
    from tests.harness import ROOT

    data = tmp_path / "data"
    data.mkdir()
    seed_sync(data / DB, taste_rows(12))
    config = tmp_path / "config.toml"
    config.write_text(finetune_toml(tiny_model_dir(root), sft_steps=100000))
    job = [sys.executable, "-m", "finetune", "run", "--data-dir", str(data), "--config",
           str(config), "--follow"]
    log = tmp_path / "job.err"
    bot = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:] + [str(os.getpid())],"
           " stdout=subprocess.DEVNULL, stderr=open(sys.argv[1], 'w')); print(p.pid)")
    started = subprocess.run([sys.executable, "-c", bot, str(log), *job], capture_output=True,
                             text=True,
                             cwd=ROOT, check=True)  # the "bot" exits at once; the job runs on
    pid = int(started.stdout)
    deadline = time.monotonic() + HEAVY_WAIT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid)
    assert "the bot that started this job has stopped" in log.read_text()
    assert not (data / "adapters").exists() or not any((data / "adapters").iterdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    status = stat.read_text().split()[2] if stat.exists() else ""
    return status != "Z"  # a zombie has ended; only its exit status waits for a reader


def test_the_job_gets_an_allow_list_of_variables_and_the_hub_token_only_for_a_gated_model():
    from bot.jobs import job_environment

    env = {"PATH": "/usr/bin", "HOME": "/home/bot", "HF_HOME": "/cache/hf",
           "CUDA_VISIBLE_DEVICES": "0", "LC_ALL": "C.UTF-8", "NO_PROXY": "localhost",
           "TELEGRAM_TOKEN": "1:t", "DISCORD_TOKEN": "d", "VLLM_API_KEY": "v",
           "COURSE_LLM_CREDENTIAL": "c", "AWS_SECRET_ACCESS_KEY": "a", "GITHUB_TOKEN": "g",
           "HF_TOKEN": "h", "HUGGING_FACE_HUB_TOKEN": "h2", "HF_API_KEY": "k",
           "DATABASE_URL": "postgres://u:p@h/db"}
    plain = job_environment(env)
    assert set(plain) == {"PATH", "HOME", "HF_HOME", "CUDA_VISIBLE_DEVICES", "LC_ALL",
                          "NO_PROXY", "PYTHONPATH"}
    gated = job_environment(env, gated=True)
    assert set(gated) - set(plain) == {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}
