"""deploy/: the container's config is valid for this code, its health check asks the port
the config listens on, and no secret sits in a file (tokens come from the environment).
No Docker here: building the image is done by hand (README, "Deploying")."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.config import load_config
from bot.frontends import FRONTENDS
from engines.registry import BUILTIN
from tests.harness import ROOT

DEPLOY = ROOT / "deploy"


def test_the_containers_config_loads_and_listens_where_the_health_check_asks(tmp_path):
    config = load_config(DEPLOY / "config.toml", FRONTENDS, BUILTIN, data_dir=str(tmp_path))
    host, port = config.server.address
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    [checked] = re.findall(r"HEALTHCHECK[^\n]*\n[^\n]*http://127\.0\.0\.1:(\d+)/healthz",
                           dockerfile)
    assert host == "0.0.0.0" and int(checked) == port  # inside the container, and for Prometheus
    assert f"EXPOSE {port}" in dockerfile and "USER 10001:10001" in dockerfile
    assert "useradd --create-home --uid 10001" in dockerfile


def test_compose_passes_tokens_from_the_environment_and_keeps_state_in_volumes():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    bot = compose["services"]["bot"]
    assert bot["environment"]["TELEGRAM_TOKEN"] is None  # unset unless the shell has it
    assert bot["environment"]["DISCORD_TOKEN"] is None
    assert bot["environment"]["VLLM_API_KEY"] is None  # the bot alone needs no vLLM key
    mounts = dict(volume.split(":")[:2] for volume in bot["volumes"])
    assert mounts == {"data": "/app/data", "adapters": "/app/data/adapters", "models": "/models"}
    assert {"data", "adapters", "models"} == set(compose["volumes"])


def test_the_vllm_image_is_pinned_and_shares_the_bots_model_volume():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    vllm = compose["services"]["vllm"]
    image, _, tag = vllm["image"].partition(":")
    assert image == "vllm/vllm-openai" and re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    mounts = dict(volume.split(":")[:2] for volume in vllm["volumes"])
    assert mounts["models"] == vllm["environment"]["HF_HOME"] == "/models"  # one download
    assert vllm["environment"]["VLLM_API_KEY"] is None


def test_vllm_mounts_the_adapters_folder_read_only_and_never_the_database():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    mounts = [volume.split(":") for volume in compose["services"]["vllm"]["volumes"]]
    assert ["adapters", "/srv/bot-data/adapters", "ro"] in mounts
    assert not [m for m in mounts if m[0] == "data"]  # the database's volume: not there
    config = load_config(DEPLOY / "config.toml", FRONTENDS, BUILTIN, data_dir="/app/data")
    assert config.components["engines.remote"]["adapter_root"] == "/srv/bot-data/adapters"
    assert config.adapters_dir == Path("/app/data/adapters")  # what the bot mounts there
