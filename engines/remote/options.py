"""The [engines.remote] table: where the server is, how to talk to it, how to sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class RemoteOptions:
    base_url: str = "http://localhost:8000/v1"
    model: str = ""  # "" : the first base model the server lists at /v1/models
    api_key_env: str = ""  # the NAME of the environment variable holding the key, never the key
    api: Literal["chat", "completions"] = "chat"
    # Ranges as plain field metadata ("min", "above", "max"), checked by the config loader.
    timeout: float = field(default=60.0, metadata={"above": 0})
    connect_timeout: float = field(default=5.0, metadata={"above": 0})
    max_retries: int = field(default=2, metadata={"min": 0})
    temperature: float = field(default=0.7, metadata={"min": 0})
    top_p: float = field(default=0.9, metadata={"above": 0, "max": 1})
    top_k: int = field(default=50, metadata={"min": 0})
    repetition_penalty: float = field(default=1.1, metadata={"above": 0})
    vllm_sampling: bool = True
    max_tokens: int = field(default=128, metadata={"min": 1})
    history_turns: int = field(default=8, metadata={"min": 0})
    seed: int = field(default=0, metadata={"min": 0})
    adapters: bool = True
    adapter_root: str = ""
    max_adapters: int = field(default=8, metadata={"min": 1})
    health_interval: float = field(default=15.0, metadata={"above": 0})
    prompts_dir: str = ""
    max_concurrent: int = field(default=16, metadata={"min": 1})  # requests at the server
