"""The transformer engine: a causal LM (plus LoRA adapters) answering in the chat's template.

Heavy imports (torch, transformers, peft) happen in `start`, so importing this module to read
its Options costs nothing. All forward passes run in one GenerationWorker thread that batches
the replies of all chats; the engine's version is the id of its active adapter.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from engines.base import Capability, Conversation, Engine, EngineContext, EngineInfo
from engines.extras import install_advice, needs_extra

log = logging.getLogger(__name__)

PROMPTS = Path(__file__).parent / "prompts"
BASE_VERSION = "base"  # the version while no adapter is active


@dataclass(frozen=True)
class TransformerOptions:
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    adapter: str = ""
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N" or "mps": checked when it starts
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Ranges as plain field metadata ("min", "above", "max"), checked by the config loader.
    temperature: float = field(default=0.7, metadata={"min": 0})
    top_k: int = field(default=50, metadata={"min": 0})
    top_p: float = field(default=0.9, metadata={"above": 0, "max": 1})
    repetition_penalty: float = field(default=1.1, metadata={"above": 0})
    max_new_tokens: int = field(default=128, metadata={"min": 1})
    history_turns: int = field(default=8, metadata={"min": 0})
    max_batch: int = field(default=16, metadata={"min": 1})
    threads: int = field(default=0, metadata={"min": 0})
    seed: int = field(default=0, metadata={"min": 0})
    prompts_dir: str = ""


class TransformerEngine(Engine):
    name: ClassVar[str] = "transformer"
    Options: ClassVar[type] = TransformerOptions
    capabilities = frozenset({Capability.NEXT_WORDS, Capability.ADAPTERS, Capability.PROBE})

    @classmethod
    def missing(cls, options: Any) -> str:
        return needs_extra("ml", "torch", "transformers", "peft")

    def __init__(self, options: TransformerOptions, ctx: EngineContext) -> None:
        super().__init__(options, ctx)
        self.worker: Any = None
        self.adapters: Any = None
        self.tokenizer: Any = None
        self.active = ""  # the adapter id new replies use; "" for the base model
        self.device = ""
        self.context = 0
        self._system_role = True
        self._prompts: dict[str, str] = {}
        self._system_starts: dict[str, list[int]] = {}  # system text -> its tokens' beginning

    async def start(self) -> None:
        # [engines.transformer] adapter overrides the one fine-tuning promoted last.
        await asyncio.to_thread(self._load, self.options.adapter or await self._promoted())
        self.worker.start()

    async def _promoted(self) -> str:
        """The active adapter, if its folder exists, so a promoted adapter survives a restart."""
        adapter_id = await self.ctx.active_adapter()
        folder = self.ctx.adapters_dir / adapter_id if self.ctx.adapters_dir else None
        return adapter_id if adapter_id and folder and folder.is_dir() else ""

    def _load(self, adapter: str) -> None:
        try:
            import torch
            import transformers  # noqa: F401
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                f"{exc.name} is not installed: the transformer needs the ml extra "
                f"({install_advice('ml')})") from exc

        from engines.transformer import loading, prompt
        from engines.transformer.adapters import AdapterSet
        from engines.transformer.sampling import Sampling
        from engines.transformer.worker import GenerationWorker

        opts = self.options
        # Half the cores by default, so a fine-tuning job beside the bot gets the other half.
        threads = opts.threads or max(1, (os.cpu_count() or 2) // 2)
        torch.set_num_threads(threads)  # per thread in practice: the worker sets it again
        self.device = loading.choose_device(opts.device)
        model, self.tokenizer = loading.load(
            opts.model, self.device, loading.choose_dtype(opts.dtype, self.device)
        )
        self.adapters = AdapterSet(model)
        if adapter:
            folder, adapter_id = self._resolve(adapter)
            self.adapters.load(folder, adapter_id)
            self.active = adapter_id
        self.context = loading.context_length(model, self.tokenizer)
        self._system_role = prompt.supports_system_role(self.tokenizer)
        self._prompts = self._read_prompts()
        sampling = Sampling(opts.temperature, opts.top_k, opts.top_p, opts.repetition_penalty)
        self.worker = GenerationWorker(
            self.adapters, self.tokenizer, sampling,
            eos_ids=loading.eos_ids(model, self.tokenizer), context=self.context,
            max_batch=opts.max_batch, device=self.device, seed=opts.seed, threads=threads,
        )

    def _read_prompts(self) -> dict[str, str]:
        folder = Path(self.options.prompts_dir) if self.options.prompts_dir else PROMPTS
        return {p.stem: p.read_text(encoding="utf-8").strip() for p in folder.glob("*.txt")}

    async def close(self) -> None:
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)

    def info(self) -> EngineInfo:
        if self.worker is None or self.worker.dead:
            return EngineInfo(ready=False, detail=getattr(self.worker, "dead", "") or "not loaded")
        return EngineInfo(ready=True, version=self.version,
                          detail=f"{self.options.model} on {self.device}")

    @property
    def version(self) -> str:
        return self.active or BASE_VERSION

    @property
    def loaded_adapters(self) -> list[str]:
        """Ids of the adapters in memory; a chat may be pinned to one (conv.adapter)."""
        return self.adapters.ids if self.adapters is not None else []

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        from engines.transformer import prompt

        adapter = await self._adapter_for(conv)
        history = conv.turns[-self.options.history_turns:] if self.options.history_turns else []
        budget = self.context - self.options.max_new_tokens
        system = self.system_prompt(conv.lang)
        ids, kept = prompt.build(self.tokenizer, system, history, conv.text, budget,
                                 self._system_role)
        shared = prompt.shared_length(ids, self._system_start(system))
        request = self.worker.submit(ids, adapter or _base(), self.options.max_new_tokens, shared)
        try:
            async for delta in request.deltas():
                yield delta
        finally:
            request.cancel()  # a no-op once finished; leaves the batch if we were cut off
            conv.version = adapter or BASE_VERSION
            conv.trace.update(self._trace(request, adapter, kept))

    async def _adapter_for(self, conv: Conversation) -> str:
        """The chat's pinned adapter (conv.adapter; "base": none), loaded on first use; the
        active adapter when the chat is not pinned or its adapter cannot be loaded."""
        pinned = conv.adapter
        if pinned == BASE_VERSION:
            return ""
        if pinned and pinned not in self.adapters.ids:
            try:
                folder, _ = self._resolve(pinned)
                await self.worker.call(lambda: self.adapters.load(folder, pinned))
            except Exception as exc:  # AdapterError: a deleted or broken folder
                log.warning("chat %s is pinned to adapter %s: %s", conv.chat_key, pinned, exc)
        return pinned if pinned in self.adapters.ids else self.active

    def _trace(self, request: Any, adapter: str, kept: int) -> dict[str, Any]:
        done = request.finished_at or time.monotonic()
        first = request.first_token_at
        return {
            "model": self.options.model,
            "adapter": adapter or "none",
            "device": self.device,
            "sampling": self.worker.sampling.describe(),
            "tokens_in": len(request.prompt_ids),
            "tokens_out": len(request.new_tokens),
            "turns_in_prompt": kept,
            "seconds": round(done - request.submitted, 3),
            "first_token_seconds": round(first - request.submitted, 3) if first else None,
        }

    def system_prompt(self, lang: str) -> str:
        return self._prompts.get(lang) or self._prompts.get("en", "")

    def _system_start(self, system: str) -> list[int]:
        from engines.transformer import prompt

        if system not in self._system_starts:
            self._system_starts[system] = prompt.system_start(self.tokenizer, system,
                                                              self._system_role)
        return self._system_starts[system]

    async def use_adapter(self, path_or_id: str) -> str:
        """Load (unless loaded) and activate an adapter: a folder, or an id under the bot's
        adapters/ folder; "" or "base" returns to the base model. New replies use it at once;
        replies in flight finish with the adapter they began with. Returns the new version.
        Raises AdapterError (one line) and keeps the current adapter if it cannot be loaded."""
        if path_or_id in ("", BASE_VERSION):
            self.active = ""
            return self.version
        folder, adapter_id = self._resolve(path_or_id)
        await self.worker.call(lambda: self.adapters.load(folder, adapter_id))
        self.active = adapter_id
        return self.version

    def _resolve(self, path_or_id: str) -> tuple[Path, str]:
        from engines.transformer.adapters import AdapterError

        if path_or_id in self.adapters.folders:
            return self.adapters.folders[path_or_id], path_or_id
        folder = Path(path_or_id).expanduser()
        if folder.is_dir():
            return folder.resolve(), folder.resolve().name
        root = self.ctx.adapters_dir
        if root is not None and (root / path_or_id).is_dir():
            return root / path_or_id, path_or_id
        raise AdapterError(f"adapter {path_or_id!r} is neither a folder nor in {root}")

    async def next_words(self, text: str, lang: str, k: int = 5) -> list[tuple[str, float]]:
        """The model's k most likely next words (tokens, as text) after `text`, read raw."""
        from engines.transformer.scoring import next_token_probs, top_words

        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][-self.context:]
        adapter = self.active or _base()
        probs = await self.worker.call(lambda: next_token_probs(self.worker, ids, adapter))
        return top_words(self.tokenizer, probs, k)

    async def probe(self, context: str, continuations: list[str], lang: str) -> list[float]:
        """ln p of each continuation after `context`, read raw (no chat template): one forward
        pass each on the worker thread. A continuation is tokenised after a space, as it
        follows the context's last word; an empty context starts at the BOS token if any."""
        from engines.transformer.scoring import continuation_logprob

        start = self._encode(context.rstrip())
        if not start:
            start = [self.tokenizer.bos_token_id or self.tokenizer.eos_token_id]
        adapter = self.active or _base()
        results = []
        for text in continuations:
            ids = self._encode(" " + text.strip())
            start_ids = start[-max(1, self.context - len(ids)):]
            results.append(await self.worker.call(
                lambda s=start_ids, c=ids: continuation_logprob(self.worker, s, c, adapter)))
        return results

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def _base() -> str:
    from engines.transformer.adapters import BASE

    return BASE
