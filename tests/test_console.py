"""`python -m bot console` as a user runs it: a subprocess with piped input and a tmp data dir."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys

from bot.frontends.console import ConsoleFrontend, ConsoleOptions, ConsoleSink
from tests.harness import ROOT, db_rows, run_console, write_config


def session(tmp_path, lines: list[str], body: str = ""):
    config = write_config(tmp_path / "config.toml", body)
    return run_console(["console", "--config", str(config), "--data-dir", str(tmp_path / "d")],
                       lines, cwd=tmp_path)


def test_switching_engines_and_replies(tmp_path):
    done = session(tmp_path, ["/engine echo", "hello there", "/engine eliza",
                              "Men are all alike.", "/status"])
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[:2] == ["This chat now talks to echo.", "Hello, I repeat."]  # and its greeting
    assert out[2] == "echo: hello there"
    assert out[3] == "This chat now talks to eliza."
    assert out[4].startswith("HOW DO YOU DO")
    assert out[5] == "IN WHAT WAY"
    assert "Engine: eliza" in done.stdout and "Messages: 4 (my replies: 2)" in done.stdout
    engines = db_rows(tmp_path / "d", "SELECT engine FROM messages WHERE role = 'bot' ORDER BY id")
    assert engines == [("echo",), ("eliza",)]


def test_good_is_stored_as_a_vote_on_the_last_reply(tmp_path):
    done = session(tmp_path, ["/engine echo", "first", "second", "/good"])
    assert "Saved your 👍" in done.stdout
    votes = db_rows(tmp_path / "d", "SELECT m.text, f.value, f.source FROM feedback f"
                  " JOIN messages m ON m.id = f.message_id")
    assert votes == [("echo: second", 1, "/good")]


def test_mydata_prints_everything_stored_about_me_as_json(tmp_path):
    done = session(tmp_path, ["/engine echo", "remember this", "/bad", "/mydata"],
                   '[console]\nuser_name = "ada"\n')
    data = json.loads(done.stdout[done.stdout.index("{"):])
    assert data["user"]["name"] == "ada"
    assert [m["text"] for m in data["messages"]] == ["remember this", "echo: remember this"]
    assert [(v["value"], v["source"]) for v in data["votes"]] == [(-1, "/bad")]


def test_forget_leaves_no_trace_of_my_text_in_the_database_file(tmp_path):
    secret = "my password is hunter2-XYZZY"
    done = session(tmp_path, ["/engine echo", secret, "/good", "My mother hates XYZZY.",
                              "/engine eliza", "My XYZZY mother is cruel.", "/forget"])
    assert "Deleted 3 of your messages" in done.stdout
    for file in (tmp_path / "d").iterdir():
        if file.name.startswith("eliza2llm.sqlite3"):
            assert b"XYZZY" not in file.read_bytes(), file.name
    assert db_rows(tmp_path / "d", "SELECT COUNT(*) FROM feedback") == [(0,)]
    assert db_rows(tmp_path / "d", "SELECT COUNT(*) FROM messages WHERE text IS NOT NULL") == [(0,)]



def test_a_piped_run_of_100_lines_gets_100_answers(tmp_path):
    """The console's user is a bot admin: far past [policy] rate_per_minute (20), nothing
    is refused."""
    lines = [f"hello number {n}" if n % 5 else "/good" for n in range(1, 101)]
    done = session(tmp_path, ["/engine echo", *lines])
    assert done.returncode == 0, done.stderr
    answers = done.stdout.splitlines()[2:]  # after the switch and the engine's greeting
    assert len(answers) == 100
    assert "at most 20 messages a minute" not in done.stdout
    assert answers[-2] == "echo: hello number 99" and answers[-1].startswith("Saved your 👍")
    assert db_rows(tmp_path / "d", "SELECT COUNT(*) FROM messages WHERE role = 'bot'") == [(80,)]
    assert db_rows(tmp_path / "d", "SELECT COUNT(*) FROM feedback") == [(20,)]

def test_an_engine_that_raises_gets_an_apology_and_the_bot_goes_on(tmp_path):
    done = session(tmp_path, ["/engine broken", "boom", "/engine echo", "still alive"])
    assert done.returncode == 0
    assert "Sorry, something went wrong" in done.stdout
    assert done.stdout.splitlines()[-1] == "echo: still alive"
    assert "the engine broke" in done.stderr  # the cause is logged



def test_without_the_ml_extra_the_transformer_is_one_line_and_the_trace_needs_v(tmp_path):
    fake_site = tmp_path / "no_ml"  # `import torch` fails here as it does without the extra
    (fake_site / "torch").mkdir(parents=True)
    (fake_site / "torch" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = dict(os.environ, PYTHONPATH=f"{fake_site}{os.pathsep}{ROOT}")
    lines = "/engine transformer\nhello\n"
    for verbose in ([], ["-v"]):
        done = subprocess.run(
            [sys.executable, "-m", "bot", "console", "--data-dir", str(tmp_path / "d"),
             *verbose], input=lines, capture_output=True, text=True, cwd=tmp_path, env=env,
            timeout=60)
        assert done.returncode == 0, done.stderr
        assert "the transformer needs the ml extra" in done.stdout
        warnings = [line for line in done.stderr.splitlines() if " WARNING " in line]
        assert len(warnings) == 1 and "ml extra" in warnings[0], done.stderr
        assert ("Traceback" in done.stderr) == bool(verbose), done.stderr
        if not verbose:  # the start line (INFO), then the one warning
            started, warned = done.stderr.strip().splitlines()
            assert " INFO bot.app: eliza2llm started: frontends console; " in started
            assert warned == warnings[0]


def test_any_other_failure_at_start_is_one_line_and_exit_1_the_trace_with_v(tmp_path):
    (tmp_path / "taken").write_text("a file where the data folder should be")
    for verbose in ([], ["-v"]):
        done = run_console(["console", "--data-dir", "taken", *verbose], ["hello"], cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("eliza2llm: FileExistsError: ") and "'taken'" in last
        assert ("Traceback" in done.stderr) == bool(verbose), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 or verbose

def test_a_bad_config_value_exits_2_naming_the_key(tmp_path):
    done = session(tmp_path, ["hello"], '[engines.ngram]\norder = "three"\n')
    assert done.returncode == 2
    assert done.stderr.strip() == (
        'eliza2llm: [engines.ngram] order: expected an integer, got "three"')
    assert done.stdout == ""


def test_an_unknown_key_or_table_exits_2_naming_it(tmp_path):
    done = session(tmp_path, [], "[bot]\nhistory_turn = 3\n")
    assert done.returncode == 2 and "[bot] history_turn: unknown key" in done.stderr
    done = session(tmp_path, [], '[telegram]\ntoken = "123:abc"\n')
    assert done.returncode == 2 and "secrets are read from the environment" in done.stderr
    done = session(tmp_path, [], "[bots]\n")
    assert done.returncode == 2 and "[bots]: unknown table" in done.stderr


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    for args in (["--frobnicate"], ["fax"], ["console", "--config", str(tmp_path / "none.toml")]):
        done = run_console(args, [], cwd=tmp_path)
        assert done.returncode == 2, args
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("eliza2llm: ")


def test_the_default_setup_is_eliza_on_a_database_under_data(tmp_path):
    """What `make run` starts: no config, no tokens, ELIZA, data/ in the working folder."""
    done = run_console([], ["Men are all alike.", "They're always bugging us about something."],
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["IN WHAT WAY", "CAN YOU THINK OF A SPECIFIC EXAMPLE"]
    assert (tmp_path / "data" / "eliza2llm.sqlite3").exists()


def test_sigterm_lets_the_reply_in_flight_finish_and_closes_cleanly(tmp_path):
    config = write_config(tmp_path / "config.toml",
                          '[bot]\ndefault_engine = "echo"\n[engines.echo]\ndelay = 0.3\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "console", "--config", str(config),
         "--data-dir", str(tmp_path / "d")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env=env,
    )
    bot.stdin.write("/status\n")  # answered at once: the bot is up once this line is out
    bot.stdin.write("one two three four\n")  # takes 1.2 s
    bot.stdin.flush()
    assert bot.stdout.readline().startswith("Engine: echo")
    bot.send_signal(signal.SIGTERM)
    out, err = bot.communicate(timeout=30)
    assert bot.returncode == 0, err
    assert out.splitlines()[-1] == "echo: one two three four"
    assert db_rows(tmp_path / "d", "SELECT text FROM messages WHERE role = 'bot'") == [
        ("echo: one two three four",)]


def test_a_rewritten_status_prints_only_the_lines_that_changed():
    out = io.StringIO()
    console = ConsoleFrontend(ConsoleOptions(), None, stdin=io.StringIO(), stdout=out)
    console.interactive = True
    sink = ConsoleSink(console, "r1")
    for step in (1, 2):
        asyncio.run(sink.update(f"Job 1: training\nstep {step}/2"))
    asyncio.run(sink.finish("Job 1: training\ndone"))
    assert out.getvalue() == "Job 1: training\nstep 1/2\nstep 2/2\ndone\n"


def test_everything_under_the_data_folder_is_private_whoever_writes_it(tmp_path):
    """Folders 0700 and files 0600 under data/, including what an engine writes with its own
    library (the n-gram model's numpy snapshots) and folders the registry makes."""
    done = session(tmp_path, ["/engine ngram", "hello there friend"])
    assert done.returncode == 0, done.stderr
    modes = {path.relative_to(tmp_path): path.stat().st_mode & 0o777
             for path in (tmp_path / "d").rglob("*")}
    assert any(path.suffix == ".npz" for path in modes), modes
    assert {mode for path, mode in modes.items() if (tmp_path / path).is_dir()} == {0o700}
    assert {mode for path, mode in modes.items() if (tmp_path / path).is_file()} == {0o600}
