"""Errors as people read them: one line. Engines, the bot and finetune all import it (engines
import nothing of the other two)."""

from __future__ import annotations


def one_line(exc: object) -> str:
    """The first line of an exception's message (or of any value's text); its type's name
    when that is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def typed_line(exc: BaseException) -> str:
    """"TypeName: first line", or the type's name alone when the message is empty."""
    name, lines = type(exc).__name__, str(exc).strip().splitlines()
    return f"{name}: {lines[0]}" if lines else name
