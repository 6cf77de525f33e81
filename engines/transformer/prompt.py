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
    """(prompt token ids, how many of `turns` it kept), at most `budget` tokens long.

    Few renderings, however long the chat: one when everything fits (the common case), else
    a bisection over the number of turns (fewer turns never make a longer prompt), and a
    message too long on its own is cut in proportion to how far it is over. (Trying one turn
    less, then one eighth of the text less, at a time took half a second for a 4 KB message
    after 4 KB turns on a small model's context: time every chat waited.)"""

    def render(kept: int, new: str) -> list[int]:
        return encode(tokenizer, messages(system, turns[len(turns) - kept:], new, system_role))

    ids = render(len(turns), text)
    if len(ids) <= budget:
        return ids, len(turns)
    best, low, high = None, 0, len(turns) - 1  # the largest count that fits is in low..high
    while low <= high:
        middle = (low + high) // 2
        found = render(middle, text)
        if len(found) <= budget:
            best, low = (found, middle), middle + 1
        else:
            ids, high = found, middle - 1
    if best is not None:
        return best
    while len(text) > 1:  # the new message alone is too long: keep its end
        share = budget / len(ids) * 0.95  # of the text: the template's own tokens stay
        text = text[len(text) - max(1, min(int(len(text) * share), len(text) * 7 // 8)):]
        ids = render(0, text)
        if len(ids) <= budget:
            return ids, 0
    raise ValueError(f"the system prompt alone is longer than {budget} tokens")
