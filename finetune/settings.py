"""What a job needs to know: the bot's data dir, [finetune] and the transformer's model, read
from the same config.toml the bot reads, and where each file of a job lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.adapters import AdapterFolders
from bot.config import DATASET_DIR, FinetuneOptions, load_config
from engines.transformer.engine import PROMPTS, TransformerOptions

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
        folder = Path(self.model.prompts_dir) if self.model.prompts_dir else PROMPTS
        for name in (lang, "en"):
            path = folder / f"{name}.txt"
            if path.is_file():
                return path.read_text(encoding="utf-8").strip()
        return ""


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
