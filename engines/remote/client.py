"""The HTTP client: the official `openai` async client (retries with backoff on 429 and 5xx,
honouring Retry-After; server-sent events parsed for us), and its errors as one line each."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from engines.base import EngineUnavailable
from engines.errors import one_line, typed_line
from engines.remote.options import RemoteOptions

NO_KEY = "EMPTY"  # vLLM's convention for a server started without --api-key


class RemoteError(EngineUnavailable):
    """The server could not give what was asked; the message says why, in one line."""


def api_key(options: RemoteOptions, env: dict[str, str] | None = None) -> str:
    """The key from the environment variable named by api_key_env (keys never sit in files)."""
    if not options.api_key_env:
        return NO_KEY
    key = (os.environ if env is None else env).get(options.api_key_env, "")
    if not key:
        raise RemoteError(f"[engines.remote] api_key_env: set {options.api_key_env} in the "
                          "environment (the server's API key)")
    return key


def make_client(options: RemoteOptions, key: str) -> Any:
    from openai import AsyncOpenAI, Timeout

    return AsyncOpenAI(
        base_url=options.base_url, api_key=key, max_retries=options.max_retries,
        timeout=Timeout(options.timeout, connect=options.connect_timeout),
    )


def shown_url(url: str) -> str:
    """The URL without its `user:password@` part: what /engines, /why and errors show."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def server_root(base_url: str) -> str:
    """http://host:8000/v1 -> http://host:8000: /health lives beside the API, not in it."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def describe(exc: BaseException) -> str:
    """A client error as one line that says what to do about it, where we know."""
    import openai

    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.AuthenticationError):
        return f"the server refused the API key ({status}): check api_key_env"
    if isinstance(exc, openai.RateLimitError):
        return f"the server is busy ({status}) and stayed busy through the retries"
    if isinstance(exc, openai.APITimeoutError):
        return "the server did not answer in time (timeout)"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"cannot reach the server: {one_line(cause)}"
    if isinstance(exc, openai.APIStatusError):
        said = one_line(_message(exc))
        hint = ("; set [engines.remote] vllm_sampling = false"
                if "top_k" in said or "repetition_penalty" in said else "")
        return f"the server answered {status}: {said}{hint}"
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        return f"the server reported an error: {one_line(exc.message)}"
    return typed_line(exc)


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("message") or inner)
        return str(inner)
    return str(getattr(exc, "message", exc))
