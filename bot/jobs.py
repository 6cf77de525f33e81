"""Fine-tuning jobs from inside the bot: `python -m finetune run` as a separate process (the bot
never trains in its event loop), one at a time, recorded in the store, its JSON progress lines
relayed to the admin by editing one status message (bot/job_protocol.py declares them), and the
adapter its "done" line names as promoted swapped into the running engines (bot/adapters.py).
The scheduler starts one every N new votes or T hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import sys
import time
import tomllib
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import job_protocol as said
from bot import logs, metrics
from bot.adapters import Teller
from bot.events import Sink
from bot.i18n import t
from bot.store import User

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)
# How Python ends a traceback: "[rank0]: package.module.SomeError: why"
_EXCEPTION_LINE = re.compile(r"^(\[rank\d+\]: )?([a-z_]\w*\.)*[A-Z]\w*: ")

ROOT = Path(__file__).resolve().parent.parent
JOB_ENV = Path(__file__).with_name("job_env.toml")  # the variables a job gets
CHECK_SECONDS = 60.0  # how often the scheduler looks at the vote count and the clock


class LogSink(Sink):
    """Where a scheduled job (nobody asked in a chat) reports: the log."""

    async def update(self, text: str) -> None:
        log.info("fine-tuning: %s", text.replace("\n", " | "))

    async def finish(self, text: str) -> list[str]:
        log.warning("fine-tuning: %s", text.replace("\n", " | "))
        return []


class JobRunner:
    def __init__(self, services: Services, python: str = sys.executable,
                 interrupted: Sequence[tuple[int, int | None]] = ()) -> None:
        self.config = services.config
        self.store = services.store
        self.adapters = services.adapters
        self.python = python
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = time.time()
        self._one_at_a_time = asyncio.Lock()
        # (job id, who asked) of the jobs an earlier run left unfinished: a /retrain delivered
        # again after the restart is told what became of its job instead of starting another.
        self._interrupted = list(interrupted)

    def interrupted_job(self, user: User) -> int | None:
        """The latest job `user` asked for that the last restart interrupted, if any."""
        return max((job for job, by in self._interrupted if by == user.id), default=None)

    @property
    def busy(self) -> bool:
        return self._one_at_a_time.locked()

    def command(self, job_id: int) -> list[str]:
        """[finetune] launcher, then `python -m finetune run ...` with the bot's python."""
        launcher = launcher_words(self.config.finetune.launcher)
        args = [self.python, "-m", "finetune", "run", "--data-dir", str(self.config.data_dir),
                "--job", str(job_id)]
        if not launcher or is_local_launcher(launcher):
            # --follow: the job ends itself when the bot dies, so it never promotes an adapter
            # behind the back of a bot that will mark it failed at its next start. A job that
            # a script runs elsewhere learns it when its output has nowhere to go.
            args += ["--follow", str(os.getpid())]
        if Path(self.config.source).is_file():
            args += ["--config", str(Path(self.config.source).resolve())]
        return launcher + args

    async def retrain(self, requested_by: User | None, sink: Sink, lang: str) -> str:
        """Run one job to its end; returns the text that ends the status message."""
        if self.busy:
            return t(lang, "retrain_busy")
        async with self._one_at_a_time:
            job_id = await self.store.add_job("finetune", requested_by)
            # A rollback of the adapter it promotes is told to the chat that asked for it (a
            # scheduled job's goes to the log).
            tell = (sink, lang) if requested_by is not None else None
            with logs.fields(job=job_id):  # log lines of this job say so
                try:
                    return await self._run(job_id, sink, lang, tell)
                except asyncio.CancelledError:  # the bot is stopping
                    await self._end_process()
                    await self.store.job_finished(job_id, False, "the bot stopped during the job")
                    metrics.FINETUNE_JOBS.labels("stopped").inc()
                    raise
                except Exception as exc:
                    log.exception("fine-tuning job %d failed", job_id)
                    await self._end_process()
                    await self.store.job_finished(job_id, False, f"{type(exc).__name__}: {exc}")
                    metrics.FINETUNE_JOBS.labels("failed").inc()
                    return t(lang, "retrain_failed", reason=type(exc).__name__)

    async def _run(self, job_id: int, sink: Sink, lang: str, tell: Teller | None) -> str:
        command = self.command(job_id)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=job_environment(os.environ, self.config.finetune.base_model_gated))
        except OSError as exc:  # no such launcher, not executable
            reason = f"could not start {command[0]}: {exc.strerror or exc}"
            await self.store.job_finished(job_id, False, reason)
            metrics.FINETUNE_JOBS.labels("failed").inc()
            return t(lang, "retrain_failed", reason=reason)
        await self.store.job_started(job_id, self.process.pid)
        await _quietly(sink.update(t(lang, "retrain_started", job=job_id)))
        assert self.process.stdout is not None and self.process.stderr is not None  # PIPE
        errors = asyncio.create_task(_tail(self.process.stderr))
        result, shown = await self._relay(self.process.stdout, sink, lang, job_id)
        code = await self.process.wait()
        lines = await errors
        error = _cause(lines)
        if code != 0:  # the whole tail, for whoever reads the log (the chat gets one line)
            log.warning("fine-tuning job %d exited with %d; its stderr ended:\n%s", job_id, code,
                        "\n".join(lines))
        self.process = None
        return f"{shown}\n" + await self._conclude(job_id, code, result, error, lang, tell)

    async def _relay(self, stdout: asyncio.StreamReader, sink: Sink, lang: str,
                     job_id: int) -> tuple[dict[str, Any], str]:
        """Turn the job's JSON lines into one status message, edited as they come; returns
        the job's result (its last events) and the status text last shown."""
        head, shown = t(lang, "retrain_started", job=job_id), ""
        result: dict[str, Any] = {}
        async for raw in stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if "step" in event:
                shown = f"{head}\n" + t(lang, "retrain_progress", **_step_fields(event))
            elif event.get("event") == said.EXPORTED:
                counted = {"scrubbed": 0, "dropped": 0} | event  # an older job's lacks them
                head = shown = t(lang, "retrain_exported", job=job_id, **counted)
            else:
                if event.get("event") in (said.DONE, said.TOO_FEW):
                    result |= event
                elif event.get("event") == said.FAILED:  # the first process to fail says why
                    result.setdefault("cause", str(event.get("reason", "")))
                continue
            await _quietly(sink.update(shown))
        return result, shown or head

    async def _conclude(self, job_id: int, code: int, result: dict[str, Any], error: str,
                        lang: str, tell: Teller | None) -> str:
        """The job's end, from its last "done" line (or why there is none): recorded, the
        adapter it promoted served, and the chat's closing words."""
        if code != 0 or result.get("event") != said.DONE:
            reason = (f"killed by signal {-code}" if code < 0 else result.get("cause") or error
                      or f"exit code {code}" + (", without a result" if code == 0 else ""))
            await self.store.job_finished(job_id, False, f"exit code {code}: {reason}")
            metrics.FINETUNE_JOBS.labels("failed").inc()
            return t(lang, "retrain_failed", reason=reason)
        adapter = result.get("adapter", "")
        if not adapter:  # too few votes: ended early, on purpose
            await self.store.job_finished(job_id, True, result.get("message", "too few votes"))
            metrics.FINETUNE_JOBS.labels("too_few").inc()
            return t(lang, "retrain_too_few", votes=result.get("votes", 0),
                     needed=result.get("needed", 0))
        await self.store.job_finished(job_id, True, result.get("reason", ""), adapter)
        metrics.FINETUNE_JOBS.labels("promoted" if result.get("promoted") else "rejected").inc()
        if not result.get("promoted"):
            return t(lang, "retrain_rejected", adapter=adapter, reason=result.get("reason", ""))
        # The job wrote the store itself; the engines serve the adapter its "done" line names.
        # The job is done and counted whatever the swap does: the watch's next look at the
        # store (Adapters.follow) swaps what this could not.
        reason = result.get("reason", "")
        try:
            done = await self.adapters.adopt(adapter, f"job {job_id}", tell)
        except Exception as exc:
            log.exception("job %d promoted %s, but the engines could not be told", job_id, adapter)
            return t(lang, "retrain_unserved", adapter=adapter, reason=reason) + " " + t(
                lang, "retrain_swap_later", reason=type(exc).__name__,
                seconds=f"{self.config.finetune.watch_seconds:g}")
        served = done.served and not done.broken
        return t(lang, "retrain_promoted" if served else "retrain_unserved",
                 adapter=adapter, version=done.version, reason=reason) + done.failures(lang)

    async def _end_process(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        self.process = None

    # the scheduler --------------------------------------------------------------------------

    async def due(self) -> bool:
        """A job is due after every_votes new votes or every_hours hours (0: that one is off),
        counted from the last job (or the bot's start)."""
        opts = self.config.finetune
        since = max(await self.store.last_job_time(), self.started_at)
        if opts.every_votes and await self.store.votes_since(since) >= opts.every_votes:
            return True
        return bool(opts.every_hours) and time.time() - since >= opts.every_hours * 3600

    async def schedule(self, check_seconds: float = CHECK_SECONDS) -> None:
        """Start due jobs, never two at once; runs until cancelled."""
        opts = self.config.finetune
        if not opts.every_votes and not opts.every_hours:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(check_seconds)
            try:
                if not self.busy and await self.due():
                    await self.retrain(None, LogSink(), self.config.bot.language)
            except Exception:  # the scheduler must not end (that would stop the bot)
                log.exception("the fine-tuning scheduler could not start a job")


def launcher_words(launcher: str) -> list[str]:
    """[finetune] launcher as a command prefix. torchrun and `accelerate launch` start a
    python script themselves; told --no-python, they run the bot's own python instead."""
    words = shlex.split(launcher)
    if is_local_launcher(words) and not {"--no-python", "--no_python"} & set(words):
        words.append("--no-python" if Path(words[0]).name == "torchrun" else "--no_python")
    return words


def is_local_launcher(words: list[str]) -> bool:
    """torchrun or `accelerate launch`: they start the job's processes as their children."""
    program = Path(words[0]).name if words else ""
    return program == "torchrun" or (program == "accelerate" and words[1:2] == ["launch"])


def job_environment(env: Mapping[str, str], gated: bool = False) -> dict[str, str]:
    """The job's environment: the variables of the bot's that bot/job_env.toml allows (never
    the platforms' tokens, the remote server's key or the hub's token, unless `gated`: the
    base model is gated and must be downloaded with it), with this checkout importable."""
    allowed = tomllib.loads(JOB_ENV.read_text(encoding="utf-8"))
    names = set(allowed["names"]) | (set(allowed["hub_token"]) if gated else set())
    prefixes = tuple(allowed["prefixes"])
    kept = {key: value for key, value in env.items() if key in names or (
        key.startswith(prefixes) and not logs.SECRET_NAME.search(key))}
    kept["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return kept


def _step_fields(event: dict[str, Any]) -> dict[str, Any]:
    return {"step": event["step"], "total": event["total"], "loss": event.get("loss", 0.0),
            "eta": round(event.get("eta", 0.0)), "phase": str(event.get("phase", "")).upper()}


def _cause(lines: list[str]) -> str:
    """The stderr line that says why a job failed: a launcher (torchrun) ends stderr with its
    own report, so the last exception line of the job's own, else the last line."""
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line) and "ChildFailedError" not in line:
            return line
    return lines[-1] if lines else ""


async def _tail(stream: asyncio.StreamReader, keep: int = 60) -> list[str]:
    """The job's last stderr lines (they say why it failed), each also logged."""
    lines: deque[str] = deque(maxlen=keep)
    async for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            log.info("finetune: %s", line)
            lines.append(line)
    return list(lines)


async def _quietly(update) -> None:
    try:
        await update
    except Exception:
        log.warning("could not update the job's status message", exc_info=True)
