"""The generation worker: one thread that runs every forward pass, batching concurrent replies.

Replies arrive from the event loop as Requests. In each step the worker
  1. runs one reading pass of at most `prefill_chunk` tokens (chunks.py): of a prefill under
     way, of a call (loading an adapter, /next, /probe), or the first of the next group of
     waiting requests — whichever's chat was served longest ago, so a newcomer's short prompt
     is read at once beside someone's long one. A group is waiting requests, chats in turn
     (turns.py), that share the first one's prompt beginning (the system prompt), read over
     the rest of their prompts once it is kept (prefix.py), up to `prefill_tokens`; it is
     formed when its turn comes. A group whose last pass ran joins the batch,
  3. advances every row by one token in one decode pass (KV cache), lets finished or cancelled
     rows leave, and hands the step's text of all rows to the event loop in one wake-up.
One reading pass a step, not one per chat: two chats of one person reading 4 KB prompts would
otherwise make every step three passes long for everyone (the neighbour bench).
So replies for many chats share forward passes, a new chat joins at the next step instead of
waiting for the batch to end, and the event loop only ever waits on queues.
A failing forward pass ends the replies in it with an error; the worker goes on with the rest.
So does a failure (out of memory, mostly) while the batch's cache grows or shrinks: the rows it
touches fail, their memory is handed back, and the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import torch

from engines.errors import typed_line
from engines.transformer.adapters import PEFT_BASE, AdapterSet
from engines.transformer.batch import Batch, Row, left_pad
from engines.transformer.calls import Calls
from engines.transformer.chunks import next_pass, prefill_passes
from engines.transformer.detok import TextDeltas
from engines.transformer.prefix import Prefixes, seeded_cache
from engines.transformer.request import Call, GenerationError, Request, deliver_soon, settle_soon
from engines.transformer.sampling import Sampling, next_tokens, seen_mask
from engines.transformer.turns import Turns

log = logging.getLogger(__name__)

# A CUDA error that leaves the context unusable (an illegal memory access, a device lost):
# torch raises it for every later call too, so the worker stops instead of failing each pass.
FATAL: tuple[type[BaseException], ...] = tuple(
    t for t in [getattr(torch, "AcceleratorError", None)] if t is not None)
PRESSURE = 0.1  # the device's free share under which the cache goes back after a batch


class _Fatal(Exception):
    """The worker cannot go on; the message is the one line everyone is told."""


@dataclass(eq=False)
class _Group:
    """Requests prefilled together, and their passes (one a step, chunks.py)."""

    rows: list[Row]
    passes: Generator[None, None, Any]

    @property
    def chats(self) -> tuple[str, ...]:
        return tuple(row.request.chat for row in self.rows)


class GenerationWorker:
    def __init__(
        self,
        adapters: AdapterSet,
        tokenizer: Any,
        sampling: Sampling,
        *,
        eos_ids: set[int],
        context_tokens: int,
        max_batch: int = 16,
        prefill_tokens: int = 4096,
        prefill_chunk: int = 256,
        device: str = "cpu",
        seed: int = 0,
        threads: int = 0,
        prefixes: int = 8,
    ) -> None:
        self.adapters = adapters
        self.tokenizer = tokenizer
        self.sampling = sampling
        self.eos_ids = eos_ids
        self.context_tokens = context_tokens
        self.max_batch = max_batch
        self.prefill_tokens = prefill_tokens  # a prefill's rows x width at most (one row always)
        self.prefill_chunk = prefill_chunk  # tokens of a prefill in one pass (chunks.py)
        self.device = device
        self.threads = threads  # torch CPU threads for the forward passes; 0: torch's default
        self.passes = 0  # forward passes so far: what batching saves
        self.dead = ""  # why the worker stopped, once it has
        self._generator = torch.Generator(device).manual_seed(seed) if seed else None
        self._inbox: queue.SimpleQueue[Request | Call | None] = queue.SimpleQueue()
        self._waiting: list[Request] = []
        self._turns = Turns()  # which waiting replies join the batch
        self._reads = Turns()  # whose reading pass runs next
        self._calls = Calls()
        self._batch = Batch()
        self._filling: list[_Group] = []  # prefills under way
        self._prefixes = Prefixes(prefixes)  # kept prompt beginnings, at most
        self._outbox: list[tuple[Request, str, str]] = []  # this step's events, sent at its end
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="transformer-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the pass in progress, fail what is left, and end the thread (blocking)."""
        self._stopping = True
        self._inbox.put(None)
        self._thread.join(timeout)

    def submit(self, prompt_ids: list[int], adapter: str = PEFT_BASE, max_new_tokens: int = 64,
               shared: int = 0, chat: str = "") -> Request:
        """Queue a reply (call on the event loop); read it with `request.deltas()`. `shared`:
        how many first prompt tokens other prompts share (the system prompt); `chat`: its turn."""
        if self.dead:
            raise GenerationError(self.dead)
        request = Request(prompt_ids, adapter, max_new_tokens, shared, chat)
        self._inbox.put(request)
        if self.dead:  # it stopped while we queued: nobody will take this one
            request._send("error", self.dead)
        return request

    async def call(self, fn: Callable[[], Any], chat: str = "") -> Any:
        """Run `fn` on the worker's thread between two forward passes; its result or error.
        Each chat's calls (`chat`: /next, /probe) take turns: one per chat between passes."""
        if self.dead:
            raise GenerationError(self.dead)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._inbox.put(Call(fn, future, loop, chat))
        if self.dead:  # it stopped while we queued: nobody will run this one
            raise GenerationError(self.dead)
        return await future

    def forward(self, adapters: list[str], **inputs: Any) -> Any:
        """One counted forward pass (worker thread only)."""
        self.passes += 1
        with torch.no_grad():
            return self.adapters.forward(adapters, **inputs)

    def adapters_in_use(self) -> set[str]:
        """The adapters of the replies in the batch or waiting (worker thread)."""
        return {row.adapter for row in self._batch.rows} | {r.adapter for r in self._waiting}

    def forget_adapters(self, adapter_ids: list[str]) -> None:
        """Unloaded adapters' kept prompt beginnings go too (worker thread)."""
        self._prefixes.drop(set(adapter_ids))

    # The worker's thread.
    def _run(self) -> None:
        if self.threads:  # torch's thread count is per calling thread
            torch.set_num_threads(self.threads)
        busy = False
        try:
            while not self._stopping:
                idle = not (self._batch or self._waiting or self._filling)
                if idle and busy:  # just done: a job may share this GPU
                    self._release_memory(oom=False)
                busy = not idle
                self._take_inbox(block=idle and not self._calls)
                failed = self._read()
                if isinstance(failed, FATAL):
                    self._fail([], failed)  # stops the worker
                if self._batch:
                    self._decode()
                self._flush()
        except _Fatal as exc:  # the device is gone: every next pass would fail the same way
            self.dead = str(exc)
            log.error("%s", self.dead)
        except BaseException as exc:  # a bug in the loop itself: fail loudly, never hang
            log.exception("the generation worker stopped")
            self.dead = f"the generation worker stopped: {type(exc).__name__}: {exc}"
        finally:
            self.dead = self.dead or "the transformer engine was closed"
            self._fail_all(self.dead)

    def _take_inbox(self, block: bool) -> None:
        while True:
            try:
                item = self._inbox.get(block=block)
            except queue.Empty:
                return
            block = False
            if item is None:
                return
            if isinstance(item, Call):
                self._calls.add(item)
            else:
                self._waiting.append(item)

    def _read(self) -> BaseException | None:
        """This step's one reading pass: of the prefills under way, the calls (each chat's
        oldest) and the next group of waiting requests (rows free), the one whose chat was
        served longest ago (a tie: in that order). A group is formed only when its turn comes,
        so requests that arrive meanwhile join it. Returns the error of a call that failed,
        for `_run` to judge."""
        self._filling = [g for g in self._filling if not self._abandoned(g)]
        self._waiting = [r for r in self._waiting if not r.cancelled]
        fresh = self._next_group()
        readers: list[tuple[Any, tuple[str, ...]]] = [(g, g.chats) for g in self._filling]
        readers += [(call, (call.chat,)) for call in self._reads.oldest_each(self._calls.waiting())]
        if fresh:
            readers.append((fresh, tuple(r.chat for r in fresh)))
        chosen = self._reads.next_of(readers)
        if fresh and chosen is fresh:  # the group's turn: formed now, its first pass runs
            chosen = self._start_group(fresh)
        if isinstance(chosen, _Group):
            self._fill(chosen)
        elif chosen is not None:
            return self._calls.turn(chosen)
        return None

    def _abandoned(self, group: _Group) -> bool:
        """Nobody waits for any of its rows: the rest of its prefill is not run."""
        if not all(row.request.cancelled for row in group.rows):
            return False
        group.passes.close()
        return True

    def _fill(self, group: _Group) -> None:
        """Run the group's next pass; after its last it joins the batch."""
        try:
            prefilled = next_pass(group.passes)
            if prefilled is None:
                return  # more passes to come: the batch takes a step first
            self._filling.remove(group)
            cache, mask, seen, (keep, last) = prefilled
            self._batch.join(group.rows, cache, mask, seen, last)  # all or nothing
        except Exception as exc:
            if group in self._filling:
                self._filling.remove(group)
            self._fail(group.rows, exc)
            return
        self._keep([True] * (len(self._batch) - len(group.rows)) + keep)

    def _next_group(self) -> list[Request]:
        """The waiting requests that would be prefilled together next, chats in turn, within
        the batch's free rows (those of prefills under way count as taken)."""
        running = [r.request for r in self._batch.rows]
        running += [row.request for group in self._filling for row in group.rows]
        turn = self._turns.pick(self._waiting, self.max_batch, running)
        return self._group(turn) if turn else []

    def _start_group(self, fresh: list[Request]) -> _Group:
        self._waiting = [r for r in self._waiting if r not in fresh]
        self._turns.served(fresh)
        rows = [Row(r, r.adapter, new_tokens=r.new_tokens, text=TextDeltas(self.tokenizer))
                for r in fresh]
        group = _Group(rows, self._prefill(rows))
        self._filling.append(group)
        return group

    def _group(self, requests: list[Request]) -> list[Request]:
        """One prefill's worth: the requests that start from the same kept beginning as the
        first one (or, if the first one's is not kept, all whose are not), in order, as long
        as their tokens to prefill, padded to the longest, stay within `prefill_tokens`."""
        prefixes = self._prefixes

        def kept(request: Request) -> Any:
            return request.prefix_key if request.prefix_key in prefixes else None

        head = kept(requests[0])
        group: list[Request] = []
        longest = 0
        for request in requests:
            if kept(request) != head:
                continue
            width = len(request.prompt_ids) - (len(head[1]) if head else 0)
            if group and (len(group) + 1) * max(longest, width) > self.prefill_tokens:
                break  # the rest wait a step: a newcomer never waits for a whole wide prefill
            group.append(request)
            longest = max(longest, width)
        return group

    def _prefill(self, rows: list[Row]) -> Generator[None, None, tuple[Any, torch.Tensor,
                                                                      torch.Tensor, Any]]:
        """The passes over the new prompts (after their kept beginning, if they have one), one
        per step: then their cache, mask and seen tokens, which rows go on after their first
        token, and those first tokens."""
        prompts = [row.request.prompt_ids for row in rows]
        key = rows[0].request.prefix_key
        shared = len(key[1]) if key in self._prefixes else 0
        ids, mask = left_pad([p[shared:] for p in prompts], self.tokenizer.pad_token_id)
        mask = torch.cat([torch.ones(len(rows), shared, dtype=mask.dtype), mask], dim=-1)
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = seeded_cache(self._prefixes.get(key), len(rows)) if shared else _new_cache()
        model = self.adapters.model
        adapters = [row.adapter for row in rows]
        out = yield from prefill_passes(
            lambda **inputs: self.forward(adapters, **inputs), ids, mask, cache, shared,
            model.config._attn_implementation, model.dtype, self.prefill_chunk)
        if shared:
            self._prefixes.hits += 1
        else:
            self._keep_prefixes(rows, out.past_key_values, mask.shape[1])
        logits = out.logits[:, -1]
        seen = seen_mask(prompts, logits.shape[-1], logits.device)
        return out.past_key_values, mask, seen, self._advance(rows, logits, seen)

    def _keep_prefixes(self, rows: list[Row], cache: Any, width: int) -> None:
        """Keep the beginnings of whole prefilled prompts for the prompts that share them."""
        for index, row in enumerate(rows):
            key = row.request.prefix_key
            if key is not None and key not in self._prefixes:
                self._prefixes.keep(key, cache, index, width - len(row.request.prompt_ids))

    def _decode(self) -> None:
        """Advance every row of the batch by one token."""
        self._keep([not row.request.cancelled for row in self._batch.rows])
        if not self._batch:
            return
        rows = self._batch.rows
        try:
            inputs = self._batch.step_inputs()
            out = self.forward([row.adapter for row in rows], past_key_values=self._batch.cache,
                               **inputs)
            keep, self._batch.last = self._advance(rows, out.logits[:, -1], self._batch.seen)
        except Exception as exc:
            self._fail(self._batch.clear(), exc)
            return
        self._keep(keep)

    def _keep(self, keep: list[bool]) -> None:
        """Let the rows that are done leave; if shrinking the cache fails, the rest fail too
        (their cache is the batch's), and the worker goes on with an empty batch."""
        try:
            self._batch.keep(keep)
        except Exception as exc:
            rows = self._batch.clear()
            self._fail([row for row, k in zip(rows, keep, strict=True) if k], exc)

    def _advance(self, rows: list[Row], logits: torch.Tensor, seen: torch.Tensor
                 ) -> tuple[list[bool], torch.Tensor]:
        """Sample one token per row, mark it seen and stream it: False for the rows done, and
        the tokens as the next step's input ([rows, 1], left on the device)."""
        tokens = next_tokens(logits, seen, self.sampling, self._generator)
        seen[torch.arange(len(rows), device=seen.device), tokens] = True
        keep = [self._append(row, token) for row, token in zip(rows, tokens.tolist(), strict=True)]
        return keep, tokens[:, None]

    def _append(self, row: Row, token: int) -> bool:
        request = row.request
        if request.cancelled:
            return False
        if request.first_token_at is None:
            request.first_token_at = time.monotonic()
        if token in self.eos_ids:
            return self._finish(row)
        row.new_tokens.append(token)
        delta = row.text.add(token)
        if delta:
            self._post(request, "delta", delta)
        length = len(request.prompt_ids) + len(row.new_tokens)
        if len(row.new_tokens) >= request.max_new_tokens or length >= self.context_tokens:
            request.cut = True
            return self._finish(row)
        return True

    def _finish(self, row: Row) -> bool:
        rest = row.text.finish()
        if rest:
            self._post(row.request, "delta", rest)
        self._post(row.request, "end")
        return False

    def _post(self, request: Request, kind: str, value: str = "") -> None:
        self._outbox.append(request._event(kind, value))

    def _flush(self) -> None:
        """Hand this step's events to their loops: one wake-up per loop, however many rows."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Request, str, str]]] = {}
        for event in self._outbox:
            by_loop.setdefault(event[0]._loop, []).append(event)
        self._outbox = []
        for loop, events in by_loop.items():
            deliver_soon(loop, events)

    def _fail(self, rows: list[Row], exc: Exception) -> None:
        fatal = isinstance(exc, FATAL)
        if not fatal:  # a fatal one is logged once, in one line, as the worker stops
            log.error("generation failed for %d replies", len(rows), exc_info=exc)
        reason = f"generation failed: {typed_line(exc)}"
        if isinstance(exc, torch.OutOfMemoryError):
            reason = (f"generation failed: out of memory with {len(self._batch) + len(rows)} "
                      "replies at once; a smaller [engines.transformer] max_batch or "
                      "max_new_tokens needs less")
        if fatal:
            reason = (f"the generation worker stopped: {typed_line(exc)} "
                      "(the GPU cannot go on after this error; restart the bot)")
        for row in rows:
            self._post(row.request, "error", reason)
        self._flush()
        if fatal:
            raise _Fatal(reason) from exc
        self._release_memory(oom=isinstance(exc, torch.OutOfMemoryError))

    def _release_memory(self, oom: bool) -> None:
        """Give the GPU memory torch holds cached back to the driver after running out of it,
        or when the device is nearly full (a training job may share it). Not at every idle
        moment: emptying the cache synchronises, and the next batch would only ask the driver
        for it again."""
        if not self.device.startswith("cuda"):
            return
        free, total = torch.cuda.mem_get_info(self.device)
        if oom or free < PRESSURE * total:
            torch.cuda.empty_cache()

    def _fail_all(self, reason: str) -> None:
        filling = [row.request for group in self._filling for row in group.rows]
        self._filling = []
        for request in [*self._waiting, *filling, *(row.request for row in self._batch.clear())]:
            self._post(request, "error", reason)
        self._flush()
        self._waiting = []
        self._calls.fail_all(GenerationError(reason))
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Request):
                item._send("error", reason)
            elif isinstance(item, Call):
                settle_soon(item, None, GenerationError(reason))


def _new_cache() -> Any:
    from engines.transformer.kv import growing_cache

    return growing_cache()
