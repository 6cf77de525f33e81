"""/probe on a served model: how likely each whole continuation is after a context, read from
the log-probabilities a server gives for the prompt itself.

POST /v1/completions with `echo` and `logprobs` (vLLM, SGLang, llama.cpp's server) returns
the prompt's tokens, each with its log-probability given the tokens before it. The prompt is
the context, a space and the continuation; the continuation's log-probability is the sum over
the tokens from where it begins (by their character offsets). A token that straddles that
point (a tokeniser that glued the space to the context's last word) counts with the
continuation, as the nearest the server's tokens allow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from engines.remote.client import RemoteError, describe

NO_ECHO = ("the server sent no log-probabilities for the prompt (echo on /v1/completions), so "
           "it cannot probe continuations")


async def continuation_logprobs(client: Any, model: str, context: str,
                                continuations: list[str],
                                turn: Callable[[], Any] = contextlib.nullcontext
                                ) -> list[float]:
    """ln p of each continuation after `context`, in the order given; one request each, all
    asked at once, each sent when `turn()` (an async context: the engine's queue) lets it.
    RemoteError says why there are none (the server gives no prompt logprobs)."""
    start = context.rstrip()
    if not start:
        raise RemoteError("a served model scores a continuation only after some context")
    prompts = [f"{start} {text.strip()}" for text in continuations]
    return list(await asyncio.gather(*(_score(client, model, prompt, len(start), turn)
                                       for prompt in prompts)))


async def _score(client: Any, model: str, prompt: str, boundary: int,
                 turn: Callable[[], Any]) -> float:
    async with turn():
        return await _score_now(client, model, prompt, boundary)


async def _score_now(client: Any, model: str, prompt: str, boundary: int) -> float:
    try:
        done = await client.completions.create(model=model, prompt=prompt, max_tokens=1,
                                               echo=True, logprobs=1, temperature=0)
    except Exception as exc:
        raise RemoteError(describe(exc)) from exc
    try:
        logprobs = done.choices[0].logprobs
        tokens = zip(logprobs.tokens, logprobs.token_logprobs, logprobs.text_offset,
                     strict=True)
    except (IndexError, TypeError, AttributeError, ValueError):
        raise RemoteError(NO_ECHO) from None
    # Tokens that end after the boundary and begin within the prompt (not the one generated).
    picked = [lp for token, lp, offset in tokens
              if offset + len(token) > boundary and offset < len(prompt)]
    if not picked or any(lp is None for lp in picked):
        raise RemoteError(NO_ECHO)
    return float(sum(picked))
