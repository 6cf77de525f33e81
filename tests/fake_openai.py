"""A fake vLLM (OpenAI-compatible) server on 127.0.0.1, for the remote engine's tests and bench.

It answers as vLLM does: GET /health, GET /v1/models (the base model and the loaded LoRA
adapters, each with its parent), POST /v1/chat/completions and /v1/completions (streamed as
server-sent events with a role chunk first, a finish chunk and, when asked, a usage chunk
with no choices, then `data: [DONE]`), top-k `logprobs` on plain completions, and the runtime
LoRA API (POST /v1/load_lora_adapter, /v1/unload_lora_adapter). With `echo`, a plain
completion also scores its prompt (words as tokens, see `echo_logprob`) unless
`prompt_logprobs` is off. A reply is the model's name
in brackets followed by the last user message's words, one word per chunk, so a test can see
which adapter answered.

Faults for the next generation requests are queued in `faults`: "429" (with Retry-After),
"500", "cut" (the stream ends mid-reply without its end), "malformed" (a chunk that is not
JSON), "error" (vLLM's in-stream error event), "hang" (no answer at all) and "keepalive"
(two words, then only SSE keep-alive comments, ten a second, until the client leaves).
With `api_key` set, requests without `Authorization: Bearer KEY` get 401.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from typing import Any

from aiohttp import web

from tests.harness import listen_on_loopback

NEXT = {" sunny": 0.5, " nice": 0.2, "sunny": 0.05, " cold": 0.1, " \n": 0.08, " bad": 0.04,
        " warm": 0.03}  # " sunny" and "sunny" are one word to a reader; "\n" is none


class FakeOpenAI:
    def __init__(self, base_model: str = "tiny-base", api_key: str = "",
                 lora_api: bool = True, delay: float = 0.0) -> None:
        self.base_model = base_model
        self.api_key = api_key
        self.lora_api = lora_api
        self.delay = delay  # seconds between chunks
        self.prompt_logprobs = True  # False: echo gives no scores for the prompt (older servers)
        self.retry_after = "0.05"  # seconds, as sent with a 429 (floats: the openai client's)
        self.faults: list[str] = []
        self.requests: list[dict[str, Any]] = []  # generation request bodies, in order
        self.loras: dict[str, str] = {}  # lora_name -> lora_path
        self.lora_calls: list[tuple[str, str]] = []  # ("load" | "unload", name)
        self.aborted = 0  # streams the client closed before their end
        self.streaming = asyncio.Event()  # set when a stream has sent its first word
        self.hold: asyncio.Event | None = None  # when set: streams wait on it after a word
        self.url = ""
        self._runner: Any = None
        self._stopping = asyncio.Event()

    async def start(self) -> FakeOpenAI:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", _healthy)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._generate)
        app.router.add_post("/v1/completions", self._generate)
        app.router.add_post("/v1/load_lora_adapter", self._load)
        app.router.add_post("/v1/unload_lora_adapter", self._unload)
        self._runner, port = await listen_on_loopback(app)
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self.hold is not None:
            self.hold.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        wanted = f"Bearer {self.api_key}"
        if self.api_key and request.path.startswith("/v1/") and \
                request.headers.get("Authorization") != wanted:
            return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    async def _models(self, _: web.Request) -> web.Response:
        rows = [{"id": self.base_model, "object": "model", "owned_by": "vllm",
                 "root": self.base_model, "parent": None}]
        rows += [{"id": name, "object": "model", "owned_by": "vllm", "root": path,
                  "parent": self.base_model} for name, path in self.loras.items()]
        return web.json_response({"object": "list", "data": rows})

    async def _load(self, request: web.Request) -> web.Response:
        if not self.lora_api:
            raise web.HTTPNotFound()
        body = await request.json()
        name, path = body["lora_name"], body["lora_path"]
        self.lora_calls.append(("load", name))
        if name in self.loras:
            return _error(400, f"The lora adapter '{name}' has already been loaded.")
        self.loras[name] = path
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def _unload(self, request: web.Request) -> web.Response:
        if not self.lora_api:
            raise web.HTTPNotFound()
        name = (await request.json())["lora_name"]
        self.lora_calls.append(("unload", name))
        if self.loras.pop(name, None) is None:
            return _error(404, f"The lora adapter '{name}' cannot be found.")
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        fault = self.faults.pop(0) if self.faults else ""
        if fault == "hang":  # until the test ends: the client must give up by itself
            await self._stopping.wait()
            return _error(503, "stopped")
        if fault in ("429", "500"):
            headers = {"Retry-After": self.retry_after} if fault == "429" else {}
            return _error(int(fault), "busy" if fault == "429" else "engine died", headers)
        model = body.get("model")
        if model != self.base_model and model not in self.loras:
            return _error(404, f"The model `{model}` does not exist.")
        chat = "messages" in body
        if not body.get("stream"):
            done = _completion(model, body)
            if body.get("echo") and self.prompt_logprobs:
                _echo(done, body["prompt"])
            return web.json_response(done)
        words = [f"[{model}]", *(" " + w for w in _last_user_text(body).split())]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            await self._stream(request, response, body, model, words, chat, fault)
        except (ConnectionResetError, asyncio.CancelledError):
            self.aborted += 1
            raise
        return response

    async def _stream(self, request: web.Request, response: web.StreamResponse, body: dict,
                      model: str, words: list[str], chat: bool, fault: str) -> None:
        make = _chat_chunk if chat else _text_chunk
        if chat:
            await _send(response, make(model, {"role": "assistant", "content": ""}))
        for i, word in enumerate(words):
            if i == 2 and fault == "keepalive":
                await self._keep_alive(response)
                return
            if i == 2 and fault in ("cut", "malformed", "error"):
                await self._fail_midway(request, response, fault)
                return
            await _send(response, make(model, {"content": word} if chat else word))
            self.streaming.set()
            if self.hold is not None:
                await self.hold.wait()
            await asyncio.sleep(self.delay)
        await _send(response, make(model, {} if chat else "", finish="stop"))
        if body.get("stream_options", {}).get("include_usage"):
            usage = {"prompt_tokens": _prompt_tokens(body), "completion_tokens": len(words),
                     "total_tokens": _prompt_tokens(body) + len(words)}
            await _send(response, {"id": "x", "object": "chat.completion.chunk",
                                   "created": int(time.time()), "model": model,
                                   "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()

    async def _keep_alive(self, response: web.StreamResponse) -> None:
        """A server that is alive and says nothing: comments only, as proxies and some
        servers send to keep an idle connection open."""
        while not self._stopping.is_set():
            await response.write(b": keep-alive\n\n")
            await asyncio.sleep(0.1)

    async def _fail_midway(self, request: web.Request, response: web.StreamResponse,
                           fault: str) -> None:
        if fault == "malformed":
            await response.write(b'data: {"choices": [{"delta": {"content": "oops\n\n')
            await response.write_eof()
        elif fault == "error":
            await _send(response, {"error": {"message": "out of KV cache", "code": 500}})
            await response.write_eof()
        else:  # "cut": the connection drops without the chunked body's end
            request.transport.close()


async def _healthy(_: web.Request) -> web.Response:
    return web.Response(status=200)  # vLLM's /health: 200 and no body


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"object": "error", "message": message, "type": "BadRequestError",
                              "param": None, "code": status}, status=status, headers=headers)


async def _send(response: web.StreamResponse, payload: dict) -> None:
    await response.write(f"data: {json.dumps(payload)}\n\n".encode())


def _chat_chunk(model: str, delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish}]}


def _text_chunk(model: str, text: str, finish: str | None = None) -> dict:
    return {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "text": text, "logprobs": None,
                                         "finish_reason": finish}]}


def _completion(model: str, body: dict) -> dict:
    """A plain completion of one token; with `logprobs`, vLLM's legacy top-k per position."""
    k = int(body.get("logprobs") or 0)
    top = dict(sorted(NEXT.items(), key=lambda kv: -kv[1])[:k])
    logprobs = {"tokens": [" sunny"], "token_logprobs": [math.log(0.5)],
                "top_logprobs": [{t: math.log(p) for t, p in top.items()}],
                "text_offset": [0]} if k else None
    return {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "text": " sunny", "logprobs": logprobs,
                                         "finish_reason": "length"}],
            "usage": {"prompt_tokens": _prompt_tokens(body), "completion_tokens": 1,
                      "total_tokens": _prompt_tokens(body) + 1}}


def echo_logprob(word: str) -> float:
    """The fake's ln p of a prompt word given those before it: 1 / (1 + its length)."""
    return math.log(1 / (1 + len(word)))


def _echo(done: dict, prompt: str) -> None:
    """Put the prompt, scored, before the completion, as vLLM's echo does: words with their
    leading space are the tokens; the first has no log-probability (nothing before it)."""
    words = [(m.group(), m.start()) for m in re.finditer(r"\s*\S+", prompt)]
    choice = done["choices"][0]
    logprobs = choice["logprobs"] or {"tokens": [" sunny"], "token_logprobs": [math.log(0.5)],
                                      "top_logprobs": [{" sunny": math.log(0.5)}]}
    choice["text"] = prompt + choice["text"]
    choice["logprobs"] = {
        "tokens": [w for w, _ in words] + logprobs["tokens"],
        "token_logprobs": [None] + [echo_logprob(w.strip()) for w, _ in words[1:]]
        + logprobs["token_logprobs"],
        "top_logprobs": [None] * len(words) + logprobs["top_logprobs"],
        "text_offset": [start for _, start in words] + [len(prompt)]}


def _last_user_text(body: dict) -> str:
    if "messages" in body:
        return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    return body["prompt"].rsplit("User: ", 1)[-1].removesuffix("\nAssistant:")


def _prompt_tokens(body: dict) -> int:
    """Words as tokens: enough for a test to check that usage reaches /why."""
    if "messages" in body:
        return sum(len(m["content"].split()) for m in body["messages"])
    return len(str(body.get("prompt", "")).split())
