"""One lifecycle for adapters (bot/adapters.py), whoever changes which one serves: a shell's
`python -m finetune promote` or `rollback` while the bot runs is served within the watch's
round; a job's promotion, an admin's /rollback and the store changed behind the bot's back swap
every engine that serves adapters, and one engine that cannot swap leaves the others swapped
and is named in the chat's report."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bot.adapters import MANIFEST, save_manifest
from bot.app import App
from bot.config import load_config
from bot.events import Incoming
from bot.frontends import FRONTENDS
from bot.i18n import t
from bot.store import Adapter
from engines.registry import BUILTIN
from tests.engines import LateAdaptingEngine
from tests.fake_job import fake_python
from tests.finetune_helpers import DB, finetune_toml
from tests.harness import ROOT, ChatSink, RecordingSink, job_row, write_config
from tests.tiny_model import adapter_dir, tiny_model_dir

WAIT = 90  # seconds a step may take on a busy machine before the test gives up

ENGINES = """
[plugins.engines]
adapting = "tests.engines:AdaptingEngine"
stuck = "tests.engines:StuckAdaptingEngine"
flaky = "tests.engines:FlakyAdaptingEngine"
late = "tests.engines:LateAdaptingEngine"
badfiles = "tests.engines:BadFilesAdaptingEngine"
own = "tests.engines:OwnAdapterEngine"
[engines.own]
adapter = "mine"
[bot]
default_engine = "adapting"
admins = ["test:admin"]
"""


class ConsoleBot:
    """`python -m bot console` as a user runs it, fed one line at a time; its output kept."""

    def __init__(self, cwd: Path, config: Path) -> None:
        self.cwd, self.config = cwd, config
        self.out: list[str] = []
        self.err: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task] = []

    async def __aenter__(self) -> ConsoleBot:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "console", "--config", str(self.config),
            "--data-dir", "data", cwd=self.cwd, env=_env(), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [asyncio.create_task(_collect(self.process.stdout, self.out)),
                         asyncio.create_task(_collect(self.process.stderr, self.err))]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.close()
        try:
            async with asyncio.timeout(WAIT):
                await self.process.wait()
        finally:
            if self.process.returncode is None:
                self.process.kill()
            await asyncio.gather(*self._readers)

    async def send(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    async def version_of_reply_to(self, text: str) -> str:
        """Say `text`; the version the bot stored with its reply."""
        await self.send(text)
        return await _eventually(lambda: _reply_version(self.cwd / "data" / DB, text),
                                 f"a reply to {text!r}", self)

    async def status(self) -> str:
        """/status's "Engine: ..." line."""
        seen = len(self.out)
        await self.send("/status")
        return await _eventually(lambda: next(
            (line for line in self.out[seen:] if line.startswith("Engine: ")), None),
            "/status", self)

    async def logged(self, text: str) -> str:
        """The bot's log line containing `text`, once it is there."""
        return await _eventually(lambda: next((line for line in self.err if text in line), None),
                                 f"the log line {text!r}", self)


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    async for raw in stream:
        lines.append(raw.decode("utf-8", "replace").rstrip("\n"))


async def _eventually(found, what: str, bot: ConsoleBot):
    async with asyncio.timeout(WAIT):
        while (value := found()) is None:
            assert bot.process is not None and bot.process.returncode is None, bot.err[-20:]
            await asyncio.sleep(0.05)
    return value


def _reply_version(db: Path, text: str) -> str | None:
    """Read-only, so that asking never creates the database before the bot does."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            row = connection.execute(
                "SELECT r.engine_version FROM messages r JOIN messages q ON q.id = r.reply_to"
                " WHERE r.role = 'bot' AND q.text = ?", (text,)).fetchone()
    except sqlite3.OperationalError:  # not there yet, or not migrated yet
        return None
    return row[0] if row else None


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_PROXY="127.0.0.1,localhost")
    for token in ("DISCORD_TOKEN", "TELEGRAM_TOKEN"):
        env.pop(token, None)
    return env


async def finetune(cwd: Path, config: Path, *args: str) -> dict:
    """`python -m finetune ARGS` from a shell beside the running bot; its last JSON line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "finetune", *args, "--data-dir", "data", "--config", str(config),
        cwd=cwd, env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(WAIT):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().splitlines()[-1])


async def test_a_shell_promote_and_rollback_are_served_by_the_running_bot(root, tmp_path):
    """The README's "the bot swaps it in": no restart, no command in the chat; the bot's watch
    (every [finetune] watch_seconds, here half a second) finds the store changed."""
    model = tiny_model_dir(root)
    config = tmp_path / "config.toml"
    config.write_text('[bot]\ndefault_engine = "transformer"\n'
                      + finetune_toml(model, watch_seconds=0.5))
    folder = tmp_path / "data" / "adapters" / "a1"
    shutil.copytree(adapter_dir(root, "a1", seed=1), folder)
    (folder / MANIFEST).write_text(json.dumps({"id": "a1", "base_model": str(model)}))

    async with ConsoleBot(tmp_path, config) as bot:
        assert await bot.version_of_reply_to("hello one") == "base"
        promoted = await finetune(tmp_path, config, "promote", "a1")
        assert promoted == {"event": "promoted", "adapter": "a1"}
        await bot.logged("changed from base to a1 in the store")
        assert await bot.version_of_reply_to("hello two") == "a1"
        assert await bot.status() == "Engine: transformer a1"

        rolled_back = await finetune(tmp_path, config, "rollback")
        assert rolled_back == {"event": "rolled_back", "retired": "a1", "active": "base"}
        await bot.logged("changed from a1 to base in the store")
        assert await bot.version_of_reply_to("hello three") == "base"
        assert await bot.status() == "Engine: transformer base"
    assert bot.process is not None and bot.process.returncode == 0, bot.err[-20:]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["promoted"]["by"] == "python -m finetune promote"
    assert manifest["rolled_back"]["by"] == "python -m finetune rollback"


def adapting_app(tmp_path: Path, default: str = "adapting") -> App:
    """A bot with engines that serve adapters (tests/engines.py); `stuck` cannot swap."""
    path = write_config(tmp_path / "config.toml",
                        ENGINES.replace('"adapting"\n', f'"{default}"\n'), engines=False)
    config = load_config(path, FRONTENDS, BUILTIN, data_dir=str(tmp_path / "data"))
    return App(config, [], env={})


async def ask(router, text: str, user: str = "admin") -> str:
    sink = RecordingSink()
    await router.handle(Incoming("test", "class", user, text, user_name=user), sink)
    assert sink.final is not None
    return sink.final


async def test_one_engine_failing_to_swap_leaves_the_others_swapped_and_the_report_says_so(
        tmp_path):
    async with adapting_app(tmp_path).serving() as router:
        adapting, stuck = await router.engines.get("adapting"), await router.engines.get("stuck")
        router.services.jobs.python = fake_python(tmp_path)  # promotes ft1, says "done"
        chat: list[str] = []
        await router.handle(Incoming("test", "class", "admin", "/retrain", user_name="admin"),
                            ChatSink(chat))
        why = "RuntimeError: cannot load adapter ft1: out of memory"
        assert t("en", "swap_failed", engine="stuck", reason=why) in chat[-1]
        assert t("en", "retrain_promoted", adapter="ft1", version="ft1",
                 reason="better on held-out votes") in chat[-1]
        assert await router.store.active_adapter() == "ft1"
        assert (adapting.info().version, stuck.info().version) == ("ft1", "base")
        assert await ask(router, "hi") == "[ft1] hi"

        answer = await ask(router, "/rollback")  # the same path: the others swap back
        assert answer.startswith(t("en", "rollback_done", retired="ft1", active="base"))
        assert "cannot load adapter base" in answer
        assert adapting.info().version == "base"
        manifest = json.loads((router.config.adapters_dir / "ft1" / MANIFEST).read_text())
        assert (manifest["promoted"]["by"], manifest["rolled_back"]["by"]) == ("job 1",
                                                                               "/rollback")


async def test_the_engines_follow_the_store_and_a_job_is_served_what_the_store_says(tmp_path):
    async with adapting_app(tmp_path).serving() as router:
        adapting = await router.engines.get("adapting")
        adapters = router.services.adapters
        for name in ("a1", "a2"):
            await adapters.register(Adapter(name, "tiny", f"/nowhere/{name}", "candidate", {}))
        await router.store.promote("a1")  # behind the bot's back, as another process does
        assert await adapters.follow() is not None and adapting.info().version == "a1"
        assert await adapters.follow() is None  # nothing changed since
        # A job's "done" names a1, but an admin promoted a2 meanwhile: the store is the truth.
        await router.store.promote("a2")
        done = await adapters.adopt("a1", "job 7")
        assert (done.active, adapting.info().version) == ("a2", "a2")
        watching = asyncio.create_task(router.services.guard.watch(every=0.01))
        try:
            await router.store.rollback()
            async with asyncio.timeout(10):
                while adapting.info().version != "a1":
                    await asyncio.sleep(0.01)
        finally:
            watching.cancel()


async def retrain(router, tmp_path: Path) -> str:
    """/retrain with the fake job (it promotes ft1 and says "done"): the job's report."""
    router.services.jobs.python = fake_python(tmp_path)
    chat: list[str] = []
    await router.handle(Incoming("test", "class", "admin", "/retrain", user_name="admin"),
                        ChatSink(chat))
    return next(said for said in chat if said.startswith("Fine-tuning job"))


async def test_an_engine_that_failed_to_swap_is_tried_again_at_each_look_and_logged_once(
        tmp_path, caplog):
    async with adapting_app(tmp_path).serving() as router:
        adapting, flaky = await router.engines.get("adapting"), await router.engines.get("flaky")
        adapters = router.services.adapters
        await adapters.register(Adapter("a1", "tiny", "/nowhere/a1", "candidate", {}))
        flaky.fails = 3  # the GPU is full for the promotion and two more looks
        with caplog.at_level(logging.WARNING, logger="bot.adapters"):
            done = await adapters.promote("a1", "test")
            assert (set(done.failed), adapting.info().version) == ({"flaky"}, "a1")
            for _ in range(2):
                done = await adapters.follow()
                assert done is not None and done.failed == {
                    "flaky": "RuntimeError: CUDA out of memory"}
            assert flaky.info().version == "base"
            done = await adapters.follow()
        assert done is not None and not done.failed and flaky.info().version == "a1"
        assert await adapters.follow() is None and flaky.tries == 4
        failed = [r for r in caplog.records if "engine flaky could not swap" in r.getMessage()]
        assert len(failed) == 1  # three failures in a row: one line (a minute apart at most)


async def test_an_engine_still_starting_during_a_rollback_is_swapped_once_it_joins(tmp_path):
    LateAdaptingEngine.hold, LateAdaptingEngine.read = asyncio.Event(), asyncio.Event()
    try:
        async with adapting_app(tmp_path).serving() as router:
            adapters = router.services.adapters
            await adapters.register(Adapter("a1", "tiny", "/nowhere/a1", "candidate", {}))
            await adapters.promote("a1", "test")
            router.engines.begin_start("late")
            async with asyncio.timeout(10):
                await LateAdaptingEngine.read.wait()  # it read a1 and still loads
            await adapters.rollback("", "/rollback")  # not loaded yet: this swap misses it
            LateAdaptingEngine.hold.set()
            late = await router.engines.get("late")
            assert late.info().version == "a1"
            assert await adapters.follow() is not None and late.info().version == "base"
    finally:
        LateAdaptingEngine.hold = LateAdaptingEngine.read = None


async def test_an_adapter_whose_files_are_bad_moves_every_engine_to_base_and_the_report_says_so(
        tmp_path):
    async with adapting_app(tmp_path).serving() as router:
        adapting, bad = await router.engines.get("adapting"), await router.engines.get("badfiles")
        said = await retrain(router, tmp_path)
        assert said.endswith(
            t("en", "retrain_unserved", adapter="ft1", reason="better on held-out votes") + " "
            + t("en", "swap_broken", adapter="ft1", reason="its weights are cut short")), said
        assert (adapting.info().version, bad.info().version) == ("base", "base")
        assert await router.store.active_adapter() == ""
        assert await router.services.adapters.follow() is None


def test_a_full_memory_is_not_the_adapters_fault_but_weights_that_do_not_fit_are(
        tmp_path, monkeypatch):
    from engines.transformer.adapters import AdapterError, AdapterSet, Prepared

    adapters = AdapterSet(model=None)
    prepared = Prepared("a1", tmp_path / "a1", config=None, weights={})

    def full(prepared: Prepared) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")

    def misfit(prepared: Prepared) -> None:
        raise RuntimeError("size mismatch for lora_A.weight: copying a param with shape ...")

    monkeypatch.setattr(adapters, "_inject", full)
    with pytest.raises(RuntimeError, match="out of memory") as raised:
        adapters.inject(prepared)
    assert not isinstance(raised.value, AdapterError)  # the engine marks nothing broken
    monkeypatch.setattr(adapters, "_inject", misfit)
    with pytest.raises(AdapterError, match="size mismatch"):
        adapters.inject(prepared)
    assert adapters.ids == []


async def test_a_rollback_never_brings_back_a_broken_adapter_and_says_what_serves(tmp_path):
    async with adapting_app(tmp_path).serving() as router:
        adapting = await router.engines.get("adapting")
        adapters = router.services.adapters
        for name in ("a1", "a2"):
            await adapters.register(Adapter(name, "tiny", f"/nowhere/{name}", "candidate", {}))
            await adapters.promote(name, "test")
        await adapters.mark_broken("a1", "its folder was deleted")
        answer = await ask(router, "/rollback")
        assert answer == (t("en", "rollback_done", retired="a2", active="base") + " "
                          + t("en", "rollback_broken", adapter="a1"))
        assert adapting.info().version == "base"


async def test_when_no_engine_can_switch_the_report_does_not_say_the_replies_come_from_it(
        tmp_path):
    async with adapting_app(tmp_path, default="stuck").serving() as router:
        await router.engines.get("stuck")  # the only engine that serves adapters
        said = await retrain(router, tmp_path)
        why = "RuntimeError: cannot load adapter ft1: out of memory"
        assert said.endswith(
            t("en", "retrain_unserved", adapter="ft1", reason="better on held-out votes") + " "
            + t("en", "swap_failed", engine="stuck", reason=why)), said


def jobs_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("eliza2llm_finetune_jobs_total", {"outcome": outcome}) or 0


async def test_a_swap_that_raises_after_the_job_ended_leaves_the_job_done_and_counted_once(
        tmp_path, monkeypatch):
    async with adapting_app(tmp_path).serving() as router:
        async def locked(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(router.services.adapters, "adopt", locked)
        before = {outcome: jobs_counted(outcome) for outcome in ("promoted", "failed")}
        said = await retrain(router, tmp_path)
        assert said.endswith(t("en", "retrain_swap_later", reason="OperationalError",
                               seconds="60")), said
        job = await job_row(router.store, 1)
        assert job is not None and (job["status"], job["adapter_id"]) == ("done", "ft1")
        assert {outcome: jobs_counted(outcome) - before[outcome]
                for outcome in before} == {"promoted": 1, "failed": 0}


def test_a_manifest_is_replaced_whole_and_stays_private(tmp_path):
    save_manifest(tmp_path, {"id": "a1", "note": "old"})
    with (tmp_path / MANIFEST).open(encoding="utf-8") as reader:  # opened before the write
        save_manifest(tmp_path, {"id": "a1", "note": "new " * 1000})
        assert json.loads(reader.read())["note"] == "old"  # never a half-written file
    assert json.loads((tmp_path / MANIFEST).read_text())["note"].startswith("new")
    assert os.stat(tmp_path / MANIFEST).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST]


async def test_a_rollback_from_a_shell_is_not_announced_later_to_the_chat_that_promoted(
        tmp_path):
    async with adapting_app(tmp_path).serving() as router:
        adapters = router.services.adapters
        await adapters.register(Adapter("a1", "tiny", "/nowhere/a1", "candidate", {}))
        chat: list[str] = []
        await adapters.promote("a1", "job 1", tell=(ChatSink(chat), "en"))
        await router.store.rollback()  # `python -m finetune rollback`, picked up by the watch
        assert await adapters.follow() is not None
        await router.store.promote("a1")  # promoted again by hand: nobody's chat asked
        assert await adapters.follow() is not None
        done = await adapters.rollback("worse", "the live guard", only="a1",
                                       announce=lambda lang: "a1 rolled back")
        assert done.retired == "a1" and chat == []


async def test_an_engine_started_with_its_own_adapter_keeps_it_until_the_store_changes(
        tmp_path):
    """`[engines.transformer] adapter`: the watch does not undo it, a promotion does."""
    async with adapting_app(tmp_path).serving() as router:
        own = await router.engines.get("own")
        adapters = router.services.adapters
        assert own.info().version == "mine"
        await adapters.follow()  # the engines without an entry are told the store's: base
        assert own.info().version == "mine"
        await adapters.register(Adapter("a1", "tiny", "/nowhere/a1", "candidate", {}))
        await router.store.promote("a1")  # a shell's promotion
        assert await adapters.follow() is not None and own.info().version == "a1"
