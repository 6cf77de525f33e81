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

from engines.adapter_serving import BASE_VERSION, ServesAdapters, adapter_folder
from engines.base import CUT, Capability, Conversation, Engine, EngineInfo, EngineSetup
from engines.extras import install_advice, needs_extra
from engines.transformer.trim import SentenceStream

log = logging.getLogger(__name__)


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
    prefill_chunk: int = field(default=256, metadata={"min": 1})
    max_adapters: int = field(default=8, metadata={"min": 1})
    threads: int = field(default=0, metadata={"min": 0})
    seed: int = field(default=0, metadata={"min": 0})
    prompts_dir: str = ""


class TransformerEngine(ServesAdapters, Engine):
    name: ClassVar[str] = "transformer"
    Options: ClassVar[type] = TransformerOptions
    capabilities = frozenset({Capability.NEXT_WORDS, Capability.ADAPTERS, Capability.PROBE,
                              Capability.REWARD})

    @classmethod
    def missing(cls, options: Any) -> str:
        return needs_extra("ml", "torch", "transformers", "peft")

    def __init__(self, options: TransformerOptions, setup: EngineSetup) -> None:
        super().__init__(options, setup)
        self.worker: Any = None
        self.adapters: Any = None
        self.tokenizer: Any = None
        self.active = ""  # the adapter id new replies use; "" for the base model
        self.device = ""
        self.context_tokens = 0
        self._system_role = True
        self._prompts: dict[str, str] = {}
        self._system_starts: dict[str, list[int]] = {}  # system text -> its tokens' beginning
        self.broken: dict[str, str] = {}  # adapter id -> why it cannot be loaded
        self._loading = ""  # how far loading got (a hub download's bytes), for /engines

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        # [engines.transformer] adapter overrides the one fine-tuning promoted last. One that
        # cannot be loaded (deleted, cut short, garbage) leaves the base model serving.
        wanted = self.options.adapter or (await self.promoted())[0]
        if wanted:
            await self._start_with(wanted)
        self.worker.start()

    async def _start_with(self, wanted: str) -> None:
        from engines.transformer.adapters import AdapterError

        try:
            folder, adapter_id = self._resolve(wanted)
            await asyncio.to_thread(self.adapters.load, folder, adapter_id)
        except AdapterError as exc:
            await self._broken(wanted, str(exc))
            return
        except Exception as exc:  # memory full: the bot's next look at the store tries again
            log.warning("adapter %s cannot be loaded now; the base model serves meanwhile: %s",
                        wanted, exc)
            return
        self.active = adapter_id

    async def _broken(self, adapter_id: str, why: str) -> None:
        """One log line, and the bot told (it marks the adapter broken); not tried again."""
        self.broken[adapter_id] = why
        log.warning("adapter %s cannot be loaded and is marked broken; %s serves meanwhile: %s",
                    adapter_id, self.active or "the base model", why)
        await self.setup.adapter_broken(adapter_id, why)

    def _load(self) -> None:
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
            opts.model, self.device, loading.choose_dtype(opts.dtype, self.device),
            progress=self._downloaded,
        )
        self.adapters = AdapterSet(model, opts.max_adapters)
        self.context_tokens = loading.context_length(model, self.tokenizer)
        self._system_role = prompt.supports_system_role(self.tokenizer)
        self.read_system_prompts()
        # a kept system prompt per language and adapter (and the base model)
        prefixes = (opts.max_adapters + 1) * max(1, len(self._prompts))
        sampling = Sampling(opts.temperature, opts.top_k, opts.top_p, opts.repetition_penalty)
        self.worker = GenerationWorker(
            self.adapters, self.tokenizer, sampling,
            eos_ids=loading.eos_ids(model, self.tokenizer), context_tokens=self.context_tokens,
            max_batch=opts.max_batch, prefill_chunk=opts.prefill_chunk, device=self.device,
            seed=opts.seed, threads=threads, prefixes=prefixes,
        )

    def _downloaded(self, done: int, total: int) -> None:
        """A hub download's progress (the loading thread): what /engines shows meanwhile."""
        self._loading = (f"downloading {self.options.model}: {done / 1e6:.0f} of "
                         f"{max(total, done) / 1e6:.0f} MB")

    async def close(self) -> None:
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)

    def info(self) -> EngineInfo:
        if self.worker is None or self.worker.dead:
            return EngineInfo(ready=False, detail=getattr(self.worker, "dead", "") or "not loaded")
        broken = "".join(f"; adapter {adapter_id} cannot be loaded: {why}"
                         for adapter_id, why in self.broken.items() if adapter_id != self.active)
        return EngineInfo(ready=True, version=self.version,
                          detail=f"{self.options.model} on {self.device}{broken}")

    def progress(self) -> str:
        return self._loading

    @property
    def loaded_adapters(self) -> list[str]:
        """Ids of the adapters in memory; a chat may be pinned to one (conv.adapter)."""
        return self.adapters.ids if self.adapters is not None else []

    async def reply(self, conv: Conversation) -> AsyncIterator[str]:
        from engines.transformer import prompt

        adapter = await self._adapter_for(conv)
        history = self.recent_turns(conv)
        budget = self.context_tokens - self.options.max_new_tokens
        system = self.system_prompt(conv.lang)
        # Off the event loop: a long chat's rendering takes a while, and other chats wait on it.
        ids, kept = await asyncio.to_thread(prompt.build, self.tokenizer, system, history,
                                            conv.text, budget, self._system_role)
        shared = prompt.shared_length(ids, self._system_start(system))
        request = self.worker.submit(ids, adapter or _peft_base(), self.options.max_new_tokens,
                                     shared, conv.chat_key)
        sentences = SentenceStream()  # a reply cut by its token cap ends at a sentence's end
        try:
            async for delta in request.deltas():
                if out := sentences.add(delta):
                    yield out
            if rest := sentences.finish(cut=request.cut):
                yield rest
        finally:
            request.cancel()  # a no-op once finished; leaves the batch if we were cut off
            conv.version = adapter or BASE_VERSION
            conv.trace.update(self._trace(request, adapter, kept))

    async def _adapter_for(self, conv: Conversation) -> str:
        """The chat's pinned adapter (conv.adapter; "base": none), loaded on first use; the
        active adapter when the chat is not pinned or its adapter cannot be loaded."""
        from engines.transformer.adapters import AdapterError

        pinned = conv.adapter
        if pinned == BASE_VERSION:
            return ""
        if pinned and pinned not in self.adapters.ids and pinned not in self.broken:
            try:
                folder, _ = self._resolve(pinned)
                await self._load_adapter(folder, pinned)
            except AdapterError as exc:  # a deleted or broken folder
                await self._broken(pinned, str(exc))
            except Exception as exc:  # memory full: tried again at the chat's next reply
                log.warning("adapter %s cannot be loaded now: %s", pinned, exc)
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
        } | ({CUT: "max_new_tokens"} if request.cut else {})

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
        Raises AdapterError (one line; the adapter is marked broken) and keeps the current
        adapter if it cannot be loaded; a failure of the moment (memory full) is raised as it
        is, and nothing is marked."""
        from engines.transformer.adapters import AdapterError

        if path_or_id in ("", BASE_VERSION):
            self.active = ""
            return self.version
        try:
            folder, adapter_id = self._resolve(path_or_id)
            await self._load_adapter(folder, adapter_id)
        except AdapterError as exc:
            await self._broken(path_or_id, str(exc))
            raise
        self.broken.pop(adapter_id, None)
        self.active = adapter_id
        return self.version

    async def _load_adapter(self, folder: Path, adapter_id: str) -> None:
        """Read the adapter off the worker's thread, then add it between two forward passes:
        replies streaming meanwhile wait at most one injection, never for the disk."""
        if adapter_id in self.adapters.folders:
            return
        prepared = await asyncio.to_thread(self.adapters.prepare, folder, adapter_id)
        await self.worker.call(lambda: self._inject(prepared))

    def _inject(self, prepared: Any) -> None:
        """Worker thread: the adapter in; those evicted for it never the active one or one
        that a reply in flight or waiting uses."""
        keep = frozenset({self.active, *self.worker.adapters_in_use()})
        self.worker.forget_adapters(self.adapters.inject(prepared, keep))

    def _resolve(self, path_or_id: str) -> tuple[Path, str]:
        from engines.transformer.adapters import AdapterError

        known = self.adapters.folders | self.adapters.unloaded
        if path_or_id in known:
            return known[path_or_id], path_or_id
        folder = Path(path_or_id).expanduser()
        if folder.is_dir():
            return folder.resolve(), folder.resolve().name
        if (kept := adapter_folder(self.setup, path_or_id)) is not None:
            return kept, path_or_id
        raise AdapterError(f"adapter {path_or_id!r} is neither a folder nor in "
                           f"{self.setup.adapters_dir}")

    async def next_words(self, text: str, lang: str, k: int = 5,
                         chat: str = "") -> list[tuple[str, float]]:
        """The model's k most likely next words (tokens, as text) after `text`, read raw."""
        from engines.transformer.scoring import next_token_probs, top_words

        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][-self.context_tokens:]
        adapter = self.active or _peft_base()
        probs = await self.worker.call(lambda: next_token_probs(self.worker, ids, adapter), chat)
        return top_words(self.tokenizer, probs, k)

    async def reward(self, prompt: str, reply: str, lang: str,
                     cut: bool) -> tuple[float, str] | None:
        """The reply's reward under the active adapter's reward model (`reward.pt` in its
        folder, fitted by the job that made it), read by the base model as the job read it."""
        from engines.transformer import prompt as chat_prompt
        from engines.transformer.reward import FILE, RewardHead, reply_ids

        adapter = self.active
        folder = self.adapters.folders.get(adapter) if adapter else None
        if folder is None or not (folder / FILE).is_file():
            return None
        path = folder / FILE
        head = await asyncio.to_thread(RewardHead.load, path)
        chat = chat_prompt.messages(self.system_prompt(lang), [], prompt, self._system_role)
        asked = chat_prompt.encode(self.tokenizer, chat)
        whole = reply_ids(self.tokenizer, asked, reply, cut)
        ids = whole[-self.context_tokens:]  # a long prompt loses its start
        replied = max(1, min(len(ids), len(whole) - len(asked)))
        value = await self.worker.call(lambda: self._reward(head, ids, replied))
        return value, adapter

    def _reward(self, head: Any, ids: list[int], replied: int) -> float:
        """Worker thread: one forward pass of the base model; the head on the reply's states."""
        import torch

        from engines.transformer.reward import reply_features

        inputs = torch.tensor([ids], device=self.worker.device)
        out = self.worker.forward([_peft_base()], input_ids=inputs,
                                  attention_mask=torch.ones_like(inputs), output_hidden_states=True,
                                  use_cache=False)
        mask = torch.zeros(1, len(ids), device=inputs.device)
        mask[0, len(ids) - replied:] = 1
        return float(head.score(reply_features(out.hidden_states[-1], mask))[0])

    async def probe(self, context: str, continuations: list[str], lang: str,
                    chat: str = "") -> list[float]:
        """ln p of each continuation after `context`, read raw (no chat template), on the
        worker's thread in the chat's turn: the context once, the continuations together
        (scoring.py). A continuation is tokenised after a space, as it follows the context's
        last word; an empty context starts at the BOS token if any; a long one loses its start."""
        from engines.transformer.scoring import continuation_logprobs

        start = self._encode(context.rstrip())
        if not start:
            start = [self.tokenizer.bos_token_id or self.tokenizer.eos_token_id]
        adapter = self.active or _peft_base()
        ids = [self._encode(" " + text.strip()) for text in continuations]
        start = start[-max(1, self.context_tokens - max(map(len, ids), default=0)):]
        return await self.worker.call(
            lambda: continuation_logprobs(self.worker, start, ids, adapter), chat)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def _peft_base() -> str:
    from engines.transformer.adapters import PEFT_BASE

    return PEFT_BASE
