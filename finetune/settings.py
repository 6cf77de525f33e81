"""What a job needs to know: the bot's data dir, [finetune] and the transformer's model, read
from the same config.toml the bot reads, and where each file of a job lives."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bot.adapters import AdapterFolders
from bot.config import DATASET_DIR, FinetuneOptions, load_config
from engines.adapter_serving import pick_prompt, read_prompts
from engines.transformer.engine import TransformerOptions

ENGINE = "transformer"  # the engine whose base model and prompts a job trains
# The engines whose replies (and votes) are learned from: the local transformer and the same
# model served by a remote server; both see the same prompt, so one adapter serves both.
LEARNED_FROM = ("transformer", "remote")


@dataclass(frozen=True)
class Settings:
    db: Path
    adapters_dir: Path
    data_dir: Path
    options: FinetuneOptions
    model: TransformerOptions
    k_people: int = 3  # [privacy] k_people: how many people make a sequence common

    @property
    def dataset_dir(self) -> Path:
        return self.data_dir / DATASET_DIR

    @property
    def folders(self) -> AdapterFolders:
        return AdapterFolders(self.adapters_dir)

    def system_prompt(self, lang: str) -> str:
        """The engine's system prompt for `lang`, so training sees what generation sees."""
        return pick_prompt(self._prompts, lang)

    @cached_property
    def _prompts(self) -> dict[str, str]:  # read once: the encoder asks for every row
        return read_prompts(self.model.prompts_dir)


def load_settings(config: Path | None, data_dir: str | None) -> Settings:
    """The job's settings; only the tables a job reads are checked here (the bot checks all)."""
    path = config if config is not None else _default_config()
    cfg = load_config(path, data_dir=data_dir)
    model = cfg.options(f"engines.{ENGINE}", TransformerOptions)
    return Settings(cfg.db_file, cfg.adapters_dir, cfg.data_dir, cfg.finetune, model,
                    cfg.privacy.k_people)


def _default_config() -> Path | None:
    path = Path("config.toml")
    return path if path.exists() else None
