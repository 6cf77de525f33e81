"""Which Telegram messages are meant for the bot, and the text the router should see.

Pure functions of a message and the bot's own user, so the group rules are easy to read.
"""

from __future__ import annotations

import re

from telegram import Message, MessageEntity, User
from telegram.constants import ChatType

# "/cmd" or "/cmd@somebot" at the start, as Telegram itself recognises bot commands.
_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]+))?(?=\s|$)")


def is_group(message: Message) -> bool:
    return message.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


def text_for_bot(message: Message, me: User, group_mode: str) -> str | None:
    """The text to answer ("/cmd args" without "@ourbot"), or None when it is not for us."""
    sender, text = message.from_user, message.text
    if not text or sender is None or sender.is_bot:
        return None
    command = _COMMAND.match(text)
    if command:
        target = command.group(2)
        if target and target.lower() != (me.username or "").lower():
            return None  # addressed to another bot in the same chat
        return f"/{command.group(1)}{text[command.end():]}"
    if not is_group(message) or group_mode == "always":
        return _without_mention(text, me)
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
        return text
    if _mentions(message, me):
        return _without_mention(text, me) or text
    return None


def _mentions(message: Message, me: User) -> bool:
    username = f"@{me.username or ''}".lower()
    for entity, part in message.parse_entities(
        [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
    ).items():
        if part.lower() == username or (entity.user is not None and entity.user.id == me.id):
            return True
    return False


def _without_mention(text: str, me: User) -> str:
    if not me.username:
        return text
    cleaned = re.sub(rf"@{re.escape(me.username)}\b[,:]?", "", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip() if cleaned != text else text
