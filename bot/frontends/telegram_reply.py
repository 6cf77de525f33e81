"""One reply on Telegram: a streamed message (or several, past 4096 characters) in one chat.

The Bot API answers flood control with 429 and `retry_after`; such a request was not carried
out, so it is safe to repeat it after the wait. Anything else (a timeout included: the message
may have arrived) is not repeated, so nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ChatAction, MessageLimit
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from bot.frontends.stream import StreamingSink

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 5
TYPING_EVERY = 4.5  # seconds; Telegram shows a chat action for about five
VOTES = {"vote:up": ("👍", 1), "vote:down": ("👎", -1)}  # callback data -> (emoji, value)
VOTE_BUTTONS = InlineKeyboardMarkup(
    [[InlineKeyboardButton(emoji, callback_data=data) for data, (emoji, _) in VOTES.items()]]
)


async def patiently(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, repeated after each 429 for as long as Telegram asks us to wait."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await call()
        except RetryAfter as exc:
            if attempt == MAX_ATTEMPTS:
                raise
            wait = retry_seconds(exc)
            log.info("telegram flood control: waiting %.1f s", wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that the type of retry_after will change
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


class TelegramReply:
    """The router's Sink for one reply; `buttons`: it carries the 👍/👎 vote buttons."""

    def __init__(
        self, bot: Bot, chat_id: int, *, reply_to: int | None, interval: float, buttons: bool
    ) -> None:
        self.bot, self.chat_id, self.reply_to = bot, chat_id, reply_to
        self.buttons = buttons
        self._stream = StreamingSink(
            self._send, self._edit, limit=MessageLimit.MAX_TEXT_LENGTH, interval=interval
        )
        self._typing: asyncio.Task | None = None

    def start_typing(self) -> None:
        """Show "typing…" until the first part of the reply is sent."""
        self._typing = asyncio.create_task(self._keep_typing(), name=f"typing-{self.chat_id}")

    async def update(self, text: str) -> None:
        await self._stream.update(text)

    async def finish(self, text: str) -> list[str]:
        try:
            return await self._stream.finish(text)
        finally:
            self.stop_typing()

    async def send_file(self, path: Path, caption: str) -> None:
        """A file as a document (a loss curve, say), in the chat of this reply."""
        data = path.read_bytes()  # bytes, not a file object: a retry must send it whole again
        await patiently(lambda: self.bot.send_document(
            self.chat_id, document=data, filename=path.name, caption=caption,
        ))

    def stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()

    @property
    def _markup(self) -> InlineKeyboardMarkup | None:
        return VOTE_BUTTONS if self.buttons else None

    async def _send(self, text: str) -> str:
        # Only the first part answers the person's message; later parts follow it.
        reply = ReplyParameters(self.reply_to, allow_sending_without_reply=True) \
            if self.reply_to is not None else None
        self.reply_to = None
        message = await patiently(lambda: self.bot.send_message(
            self.chat_id, text, reply_parameters=reply, reply_markup=self._markup,
        ))
        self.stop_typing()
        return str(message.message_id)

    async def _edit(self, message_id: str, text: str) -> None:
        try:
            await patiently(lambda: self.bot.edit_message_text(
                text, chat_id=self.chat_id, message_id=int(message_id), reply_markup=self._markup,
            ))
        except BadRequest as exc:
            if not not_modified(exc):
                raise

    async def _keep_typing(self) -> None:
        while True:
            with contextlib.suppress(TelegramError):
                await self.bot.send_chat_action(self.chat_id, ChatAction.TYPING)
            await asyncio.sleep(TYPING_EVERY)
