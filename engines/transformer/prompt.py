"""The prompt: system text, recent turns and the new message, in the model's chat template.

When it does not fit the model's context (less the room for the reply), the oldest turns go
first; a new message that is too long on its own keeps its end.
"""

from __future__ import annotations

from typing import Any

from engines.base import Turn

ROLES = {"user": "user", "bot": "assistant"}


def messages(system: str, turns: list[Turn], text: str, system_role: bool = True) -> list[dict]:
    """Chat messages with consecutive turns of one role merged (many people in a group chat
    speak in a row; most chat templates expect user and assistant to alternate)."""
    chat: list[dict[str, str]] = []
    for role, content in [*((ROLES[t.role], t.text) for t in turns), ("user", text)]:
        if chat and chat[-1]["role"] == role:
            chat[-1]["content"] += "\n" + content
        else:
            chat.append({"role": role, "content": content})
    if system and system_role:
        chat.insert(0, {"role": "system", "content": system})
    elif system:  # templates without a system role (Gemma, say): it leads the first message
        chat[0]["content"] = f"{system}\n\n{chat[0]['content']}"
    return chat


def encode(tokenizer: Any, chat: list[dict]) -> list[int]:
    return list(tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, tokenize=True, return_dict=False
    ))


def system_start(tokenizer: Any, system: str, system_role: bool = True) -> list[int]:
    """Tokens that every prompt with this system text begins with, whatever follows (the
    worker keeps their cache once for all replies): the template's rendering of the system
    message alone, of which a prompt shares as much as `shared_length` finds."""
    if not (system and system_role):
        return []
    try:
        return list(tokenizer.apply_chat_template(
            [{"role": "system", "content": system}], tokenize=True, return_dict=False))
    except Exception:  # a template that wants a user message after the system one
        return []


def shared_length(ids: list[int], start: list[int]) -> int:
    """How many leading tokens `ids` has in common with `start`."""
    length = 0
    for mine, theirs in zip(ids, start, strict=False):
        if mine != theirs:
            break
        length += 1
    return length


def supports_system_role(tokenizer: Any) -> bool:
    try:
        encode(tokenizer, [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    except Exception:  # jinja raises the template's own "system role not supported" error
        return False
    return True


def build(
    tokenizer: Any,
    system: str,
    turns: list[Turn],
    text: str,
    budget: int,
    system_role: bool = True,
) -> tuple[list[int], int]:
    """(prompt token ids, how many of `turns` it kept), at most `budget` tokens long."""
    for kept in range(len(turns), -1, -1):
        newest = turns[len(turns) - kept:]
        ids = encode(tokenizer, messages(system, newest, text, system_role))
        if len(ids) <= budget:
            return ids, kept
    while len(text) > 1:  # the new message alone is too long: keep its end
        text = text[max(1, len(text) // 8):]
        ids = encode(tokenizer, messages(system, [], text, system_role))
        if len(ids) <= budget:
            return ids, 0
    raise ValueError(f"the system prompt alone is longer than {budget} tokens")
