"""The three requests the engine makes: a streamed chat reply, a streamed plain completion (for
servers or models without a chat template), and the next token's top-k log-probabilities."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from engines.remote.client import RemoteError, describe
from engines.remote.options import RemoteOptions
from engines.remote.retries import retried

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass
class Stats:
    """What one streamed reply cost, for /why."""

    started: float
    first_token: float | None = None
    finished: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = ""


def sampling(options: RemoteOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """(standard OpenAI fields, extra fields) for a request. top_k and repetition_penalty are
    vLLM's (SGLang and llama.cpp take them too); vllm_sampling = false leaves them out."""
    fields: dict[str, Any] = {"temperature": options.temperature, "top_p": options.top_p,
                              "max_tokens": options.max_tokens}
    if options.seed:
        fields["seed"] = options.seed
    extra: dict[str, Any] = {}
    if options.vllm_sampling:
        extra["repetition_penalty"] = options.repetition_penalty
        if options.top_k:
            extra["top_k"] = options.top_k
    return fields, extra


def transcript(chat: list[dict[str, str]]) -> str:
    """The chat as plain text ending where the assistant speaks, for api = "completions"."""
    lines = [f"{ROLE_NAMES[m['role']]}: {m['content']}" for m in chat]
    return "\n".join([*lines, "Assistant:"])


async def stream_reply(client: Any, options: RemoteOptions, model: str,
                       chat: list[dict[str, str]], stats: Stats) -> AsyncIterator[str]:
    """The reply's text deltas; any failure is a RemoteError. Closing this generator closes the
    HTTP stream, which tells vLLM to abort the request.

    Deadlines, both `timeout`: the first token within `timeout` of the request, retries of the
    client included (a hung server is not waited out once per retry); after that, each next
    token within `timeout` of asking for it. Chunks without text (the role chunk, the usage)
    and keep-alive comments (which the client's SSE reader drops) do not count as tokens. Time
    the caller spends between tokens (a platform that keeps the reply waiting) is not counted.
    """
    fields, extra = sampling(options)
    common = {"model": model, "stream": True, "stream_options": {"include_usage": True},
              "extra_body": extra or None, **fields}
    deadline = Deadline(options.timeout)
    once = client.with_options(max_retries=0)  # retried here, inside the deadline

    async def request() -> Any:
        if options.api == "chat":
            return await once.chat.completions.create(messages=chat, **common)
        return await once.completions.create(prompt=transcript(chat), stop=["\nUser:"],
                                             **common)

    try:
        stream = await retried(request, options.max_retries, deadline.at)
    except TimeoutError as exc:
        raise RemoteError(deadline.missed(first=True)) from exc
    except Exception as exc:
        raise RemoteError(describe(exc)) from exc
    try:
        chunks = aiter(stream)
        while True:
            try:
                async with asyncio.timeout_at(deadline.at):
                    text = _read_chunk(await anext(chunks), stats)
            except StopAsyncIteration:
                break
            if text:
                stats.first_token = stats.first_token or time.monotonic()
                yield text
                deadline.restart()  # the caller has handed control back: the next token's
            # Chunks that arrived together are parsed without a pause otherwise: with many
            # chats streaming, one reply could hold the event loop for tens of milliseconds.
            await asyncio.sleep(0)
    except TimeoutError as exc:
        raise RemoteError(deadline.missed(first=stats.first_token is None)) from exc
    except Exception as exc:  # a cut stream, a malformed chunk, a read timeout, an error event
        raise RemoteError(_mid_stream(exc)) from exc
    finally:
        stats.finished = time.monotonic()
        await stream.close()


class Deadline:
    """When the next token is due: `seconds` from the request, then from each token's
    delivery to the caller."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = 0.0
        self.restart()

    def restart(self) -> None:
        self.at = asyncio.get_running_loop().time() + self.seconds

    def missed(self, first: bool) -> str:
        if first:
            return (f"the server did not answer in time (timeout: no token within"
                    f" {self.seconds:g} s, retries included)")
        return f"the server stopped sending mid-reply (timeout: no token for {self.seconds:g} s)"


def _read_chunk(chunk: Any, stats: Stats) -> str:
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        stats.prompt_tokens = usage.prompt_tokens
        stats.completion_tokens = usage.completion_tokens
    text = ""
    for choice in chunk.choices or ():
        delta = getattr(choice, "delta", None)
        text += (delta.content if delta is not None else choice.text) or ""
        stats.finish_reason = choice.finish_reason or stats.finish_reason
    return text


def _mid_stream(exc: Exception) -> str:
    import httpx2
    import openai

    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return "the server stopped sending mid-reply (timeout)"
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        cause = exc.__cause__ or exc
        return f"the stream was cut mid-reply: {str(cause).strip() or type(cause).__name__}"
    if isinstance(exc, openai.APIError):
        return describe(exc)
    if isinstance(exc, ValueError):  # json.JSONDecodeError, pydantic's ValidationError
        return f"the server sent a malformed chunk: {describe(exc)}"
    return describe(exc)


async def next_tokens(client: Any, model: str, text: str, k: int) -> list[tuple[str, float]]:
    """The k most likely next words after `text` from POST /completions (max_tokens 1,
    logprobs k): tokens stripped, the same word summed, blanks left out."""
    try:
        done = await client.completions.create(model=model, prompt=text, max_tokens=1,
                                               logprobs=k, temperature=0)
        top = done.choices[0].logprobs.top_logprobs[0] if done.choices[0].logprobs else None
    except (IndexError, TypeError, AttributeError):
        top = None
    except Exception as exc:
        raise RemoteError(describe(exc)) from exc
    if not top:
        raise RemoteError("the server sent no logprobs for /v1/completions, so it cannot show "
                          "next-word probabilities")
    words: dict[str, float] = {}
    for token, logprob in top.items():
        word = token.strip()
        if word and "\ufffd" not in word:
            words[word] = words.get(word, 0.0) + math.exp(logprob)
    return sorted(words.items(), key=lambda item: -item[1])[:k]
