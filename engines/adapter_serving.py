"""What the two engines that serve LoRA adapters share — the local transformer and the same
model on a remote server: the system prompts, the recent turns a prompt holds, the adapter
fine-tuning promoted, and the version of the base model. One home, so an adapter trained by
finetune/ (which reads the prompts here too) sees the same prompt from either engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engines.base import Conversation, EngineSetup, Turn

PROMPTS = Path(__file__).parent / "transformer" / "prompts"  # LANG.txt: the system texts
BASE_VERSION = "base"  # the version while no adapter is active


def read_prompts(prompts_dir: str = "") -> dict[str, str]:
    """The system prompts by language: `prompts_dir`'s LANG.txt files, else the packaged ones."""
    folder = Path(prompts_dir) if prompts_dir else PROMPTS
    return {p.stem: p.read_text(encoding="utf-8").strip() for p in folder.glob("*.txt")}


def pick_prompt(prompts: dict[str, str], lang: str) -> str:
    """The prompt for `lang`, else the English one, else none."""
    return prompts.get(lang) or prompts.get("en", "")


def adapter_folder(setup: EngineSetup, adapter_id: str) -> Path | None:
    """The folder of an adapter id under the bot's adapters/ folder; None if there is none."""
    root = setup.adapters_dir
    return root / adapter_id if adapter_id and root is not None and (
        root / adapter_id).is_dir() else None


class ServesAdapters:
    """For an Engine whose options have `prompts_dir` and `history_turns`: call
    `read_system_prompts` at start; `active` is the adapter id new replies use."""

    options: Any
    setup: EngineSetup
    active: str = ""
    _prompts: dict[str, str]

    def read_system_prompts(self) -> None:
        self._prompts = read_prompts(self.options.prompts_dir)

    def system_prompt(self, lang: str) -> str:
        return pick_prompt(getattr(self, "_prompts", {}), lang)

    def recent_turns(self, conv: Conversation) -> list[Turn]:
        """The chat's last `history_turns` turns, the ones a prompt may hold."""
        turns = self.options.history_turns
        return conv.turns[-turns:] if turns else []

    @property
    def version(self) -> str:
        return self.active or BASE_VERSION

    async def promoted(self) -> tuple[str, Path | None]:
        """The adapter fine-tuning promoted last ("" for the base model), so it survives a
        restart, and its folder under the bot's adapters/ (None where it has none)."""
        adapter_id = await self.setup.active_adapter()
        return adapter_id, adapter_folder(self.setup, adapter_id)
