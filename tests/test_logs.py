"""Log lines as JSON (`--log-format json`): a real run of `python -m bot telegram` against the
fake Bot API writes one JSON object per line, with the chat a line concerns, and neither what
people wrote nor the token; the formatters' fields and redaction on their own."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys

from bot import logs
from tests.fake_telegram import FakeTelegram, Person
from tests.harness import ROOT, write_config

ALICE = Person(1, "Alice")
SECRET_WORDS = "my neighbour's name is Xylophon-Quark"  # must never reach a log


async def test_a_json_run_logs_objects_with_the_chat_and_no_text_or_token(tmp_path):
    fake = await FakeTelegram().start()
    config = write_config(tmp_path / "config.toml", (
        '[bot]\ndefault_engine = "broken"\n[telegram]\n'
        f'base_url = "{fake.base_url}"\npoll_timeout = 1.0\n'))
    env = dict(os.environ, PYTHONPATH=str(ROOT), TELEGRAM_TOKEN=fake.token)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "telegram", "--config", str(config), "--data-dir",
        str(tmp_path / "data"), "--log-format", "json", "-v",
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        await fake.wait_for(lambda: fake.calls_to("getUpdates"), "polling", timeout=60)
        chat = fake.private(ALICE)
        fake.say(chat, ALICE, SECRET_WORDS)  # the broken engine fails: an error is logged
        await fake.wait_for(lambda: fake.sent(chat), "the apology", timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        await fake.close()
    text = stderr.decode()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one object
    assert process.returncode == 0, text
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    [failed] = [line for line in lines if line["message"].startswith("engine broken failed")]
    assert failed["level"] == "ERROR" and failed["chat"] == "telegram:1"
    assert failed["engine"] == "broken"
    assert "RuntimeError: the engine broke" in failed["exc"]
    assert any(line["logger"] == "bot.frontends.telegram" for line in lines)  # -v: info too
    assert "Xylophon" not in text
    assert fake.token not in text and fake.token.split(":")[1] not in text


def formatted(log_format: logs.LogFormat, env: dict[str, str], emit) -> str:
    out = io.StringIO()
    handler = logs.prepared(logging.StreamHandler(out), log_format, env)
    logger = logging.getLogger("engines.remote.client")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return out.getvalue()


def test_fields_come_from_the_context_from_extra_and_from_an_engines_logger():
    def emit(logger: logging.Logger) -> None:
        with logs.fields(chat="discord:42", job=None):
            logger.warning("adapter %s missing", "a7", extra={"version": "a7", "job": 3})
        logger.warning("outside")

    first, second = map(json.loads, formatted("json", {}, emit).splitlines())
    assert first == first | {"chat": "discord:42", "engine": "remote", "version": "a7",
                             "job": "3", "message": "adapter a7 missing", "level": "WARNING"}
    assert "chat" not in second and second["engine"] == "remote"


def test_secrets_from_the_environment_are_replaced_in_messages_and_tracebacks():
    token = "123456:AAE-very-secret-token"
    env = {"TELEGRAM_TOKEN": token, "VLLM_API_KEY": "k" * 32, "DEBUG": "1", "PATH": "/usr/bin"}

    def emit(logger: logging.Logger) -> None:
        try:
            raise ValueError(f"POST https://api.telegram.org/bot{token}/getMe failed")
        except ValueError:
            logger.exception("key %s, path %s", "k" * 32, "/usr/bin")

    for log_format in ("json", "text"):
        out = formatted(log_format, env, emit)
        assert token not in out and "k" * 32 not in out
        assert out.count(logs.REDACTED) == 2 and "/usr/bin" in out  # only secrets go


def test_library_warnings_are_log_lines_not_text_in_the_chat(tmp_path):
    """A library's FutureWarning goes through the log's handler (the log file while someone
    chats on the terminal), formatted like every other line."""
    script = ("import warnings; from pathlib import Path; from bot import logs; "
              f"logs.setup(Path({str(tmp_path)!r}), verbose=False, chat_on_terminal=False, "
              "log_format='json'); warnings.warn('going away', FutureWarning)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    [line] = [json.loads(text) for text in done.stderr.splitlines()]
    assert line["logger"] == "py.warnings" and line["level"] == "WARNING"
    assert "FutureWarning: going away" in line["message"]


def test_secrets_with_quotes_or_backslashes_are_redacted_as_json_and_repr_write_them():
    secret = 'pa"ss\\word-0123456789'  # JSON writes pa\"ss\\\\word, repr pa"ss\\\\word
    env = {"REMOTE_PASSWORD": secret}

    def emit(logger: logging.Logger) -> None:
        logger.warning("sent %s", secret)
        logger.warning("body %r", {"auth": secret})
        logger.warning("json %s", json.dumps({"auth": secret}))

    for log_format in ("json", "text"):
        out = formatted(log_format, env, emit)
        assert "ss\\" not in out.replace("\\\\", "") and 'pa"' not in out, out
        assert "0123456789" not in out and out.count(logs.REDACTED) == 3, out


def test_the_variable_named_by_api_key_env_is_redacted_whatever_its_name(tmp_path,
                                                                          monkeypatch):
    from bot import __main__ as main_module

    key = "course-llm-0123456789abcdef"  # COURSE_LLM_CREDENTIAL: not named like a secret
    assert key not in logs.secrets_in({"COURSE_LLM_CREDENTIAL": key})
    out = formatted("text", {"COURSE_LLM_CREDENTIAL": key},
                    lambda logger: logger.warning("request with %s", key))
    assert key in out  # the name alone does not say so: the config must
    handler = logs.prepared(logging.StreamHandler(io.StringIO()), "text",
                            {"COURSE_LLM_CREDENTIAL": key}, ["COURSE_LLM_CREDENTIAL"])
    assert key in handler.formatter.secrets

    # python -m bot hands the name from [engines.remote] api_key_env to the log's setup
    config = write_config(tmp_path / "config.toml",
                          '[engines.remote]\napi_key_env = "COURSE_LLM_CREDENTIAL"\n')
    seen = {}
    monkeypatch.setattr(main_module.logs, "setup", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(main_module, "App", lambda *a: type("Idle", (), {
        "run": staticmethod(lambda: asyncio.sleep(0, 0))})())
    args = main_module.parse_args(["console", "--config", str(config),
                                   "--data-dir", str(tmp_path / "data")])
    assert main_module.run(args) == 0
    assert seen["secret_names"] == ["COURSE_LLM_CREDENTIAL"]
