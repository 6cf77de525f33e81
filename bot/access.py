"""Who may use the bot at all: [access] allow and block lists of "platform:kind:id".

Decided before anything else happens to a message or a reaction, so that nothing of a refused
person is stored: no chat or user row, no message, no vote.
"""

from __future__ import annotations

from bot.config import AccessOptions, BotOptions
from bot.events import Incoming, Reaction
from bot.policy import is_bot_admin

Person = Incoming | Reaction


def names(person: Person) -> set[str]:
    """Every "platform:kind:id" that describes where this person writes from."""
    p = person.platform
    found = {f"{p}:user:{person.user_id}", f"{p}:chat:{person.chat_id}"}
    if person.server_id:
        found.add(f"{p}:server:{person.server_id}")
    found.update(f"{p}:role:{role}" for role in person.roles)
    return found


def admitted(person: Person, access: AccessOptions, bot: BotOptions) -> bool:
    """Bot admins always; otherwise not in a private chat when private_chats is false, never
    when anything about them is blocked, and (with a non-empty allow list) only when something
    about them is allowed."""
    if is_bot_admin(person, bot):
        return True
    if not person.is_group and not access.private_chats:
        return False
    described = names(person)
    if described & set(access.block):
        return False
    return not access.allow or bool(described & set(access.allow))
