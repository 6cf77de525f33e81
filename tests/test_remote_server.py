"""End to end against a server we did not write: `transformers serve` (Hugging Face's
OpenAI-compatible server) on 127.0.0.1, serving the tiny model on this CPU, driven by the piped
console exactly as the README shows. Needs the test extra's fastapi and uvicorn."""

from __future__ import annotations

import pytest

from bot.i18n import t
from tests.harness import HEAVY_WAIT, heavy, run_console, transformers_serve, write_config
from tests.tiny_model import tiny_model_dir

pytest.importorskip("fastapi", reason="transformers serve needs the test extra's fastapi")
pytest.importorskip("uvicorn", reason="transformers serve needs the test extra's uvicorn")
pytest.importorskip("torch", reason="the tiny model needs the ml extra")
pytestmark = heavy  # transformers serve started once, then consoles that talk to it




@pytest.fixture(scope="module")
def served(root):
    """(base_url, model) of `transformers serve` running the tiny model; stopped at the end."""
    model = tiny_model_dir(root)
    with transformers_serve(model, root) as base_url:
        yield base_url, str(model)


def test_the_piped_console_talks_to_transformers_serve(served, tmp_path):
    base_url, model = served
    config = write_config(tmp_path / "cfg.toml", (
        f'[engines.remote]\nbase_url = "{base_url}"\nmodel = "{model}"\n'
        "max_tokens = 6\ntemperature = 0\ntimeout = 60.0\n"
        "vllm_sampling = false\n"), engines=False)  # it refuses top_k and repetition_penalty
    done = run_console(["console", "--config", str(config), "--data-dir", str(tmp_path / "d")],
                       ["/engine remote", "Hello there", "/next The weather is", "/why"],
                       cwd=tmp_path, timeout=HEAVY_WAIT // 2)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0] == "This chat now talks to remote.", out
    assert t("en", "apology") not in out.splitlines()[1], out  # the tiny model's 6 tokens
    why = out[out.index("My last reply came from remote base."):].splitlines()
    fields = dict(line.split(": ", 1) for line in why[1:] if ": " in line)
    assert fields["server"] == base_url and fields["model"] == model
    assert fields["tokens_out"] == "6" and fields["finish_reason"] == "length"
    assert int(fields["tokens_in"]) > 20  # the system prompt, in the tiny model's template
    assert float(fields["first_token_seconds"]) > 0
    # transformers serve ignores `logprobs`, so /next cannot show probabilities: the bot says
    # why in one line (the console's user is an admin, who sees the details).
    assert "unavailable: the server sent no logprobs for /v1/completions" in out


def test_a_server_that_refuses_vllm_fields_is_told_apart_in_one_line(served, tmp_path):
    base_url, model = served
    config = write_config(tmp_path / "cfg.toml", (
        f'[engines.remote]\nbase_url = "{base_url}"\nmodel = "{model}"\n'), engines=False)
    done = run_console(["console", "--config", str(config), "--data-dir", str(tmp_path / "d")],
                       ["/engine remote", "Hello there", "/why", "/engine eliza", "Hello"],
                       cwd=tmp_path, timeout=HEAVY_WAIT // 2)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == t("en", "apology")
    error = next(line for line in lines if line.startswith("error: "))
    assert error.startswith("error: RemoteError: the server answered 422: ")
    assert error.endswith("; set [engines.remote] vllm_sampling = false")
    assert lines[-1] == "HOW DO YOU DO. PLEASE STATE YOUR PROBLEM"
