"""One reply on Telegram: a streamed message (or several, past 4096 characters) in one chat.

Retries follow the Bot API's rules. A 429 (flood control) was not carried out: it is repeated
after the wait Telegram names, as often as it asks, until the reply's deadline. A 5xx answer
or a failed connection is repeated with backoff until the deadline too. A send that timed out
may have arrived, so it is never repeated: sends wait long for their answer (a late answer is
still an answer, with the message's id), and edits, which change nothing when repeated, are
retried like the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ChatAction, MessageLimit
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.warnings import PTBDeprecationWarning

from bot import metrics
from bot.events import Sink
from bot.frontends import telegram_sends
from bot.frontends.stream import StreamingSink
from bot.frontends.telegram_pace import ChatPace

log = logging.getLogger(__name__)

T = TypeVar("T")
PATIENCE = 120.0  # seconds a request is retried for when no deadline is given
SEND_READ_TIMEOUT = 60.0  # seconds a send waits for its answer (PTB's default is 5)
BACKOFF_FIRST, BACKOFF_MOST = 0.2, 8.0  # seconds between retries after a 5xx or network error
TYPING_EVERY = 4.5  # seconds; Telegram shows a chat action for about five
VOTES = {"vote:up": ("👍", 1), "vote:down": ("👎", -1)}  # callback data -> (emoji, value)
VOTE_BUTTONS = InlineKeyboardMarkup(
    [[InlineKeyboardButton(emoji, callback_data=data) for data, (emoji, _) in VOTES.items()]]
)


async def patiently(call: Callable[[], Awaitable[T]], *, deadline: float | None = None,
                    repeatable: bool = True) -> T:
    """`call()`, repeated after 429s, 5xx answers and failed connections until `deadline`
    (time.monotonic); a timeout is repeated only for a `repeatable` call (not a send)."""
    deadline = deadline if deadline is not None else time.monotonic() + PATIENCE
    failures = 0
    while True:
        try:
            return await call()
        except BadRequest:  # PTB's 400 is a NetworkError too; a bad request stays bad
            raise
        except RetryAfter as exc:
            wait = retry_seconds(exc)
            metrics.PLATFORM_WAITS.labels("telegram").inc()
            log.info("telegram flood control: waiting %.1f s", wait)
        except TimedOut:
            if not repeatable:
                raise  # it may have been carried out: never twice
            failures += 1
            wait = backoff(failures)
        except NetworkError as exc:  # 5xx, or no connection: not carried out
            if not repeatable and not _never_arrived(exc):
                raise  # the connection broke after the request went out: it may have arrived
            failures += 1
            wait = backoff(failures)
            log.info("telegram: %s; trying again in %.1f s", exc, wait)
        if time.monotonic() + wait > deadline:
            raise TimeoutError("telegram kept refusing until the reply's deadline")
        await asyncio.sleep(wait)


def _never_arrived(exc: NetworkError) -> bool:
    """A 5xx answer (PTB raises it with no cause) or a connection that never opened: the
    request was not carried out. A connection that broke later may have delivered it."""
    cause = exc.__cause__
    return cause is None or isinstance(cause, httpx.ConnectError)


def backoff(failures: int) -> float:
    return min(BACKOFF_MOST, BACKOFF_FIRST * 2 ** (failures - 1))


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that the type of retry_after will change
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


class TelegramReply(Sink):
    """The router's Sink for one reply; `buttons`: it carries the 👍/👎 vote buttons.

    `sent` holds the ids of messages already showing this reply (sent before a restart): they
    are edited, not sent again. `on_sent` hears every new id as soon as Telegram gives it.
    `pace`: the group's (telegram_pace), shared by its replies; None in a private chat."""

    def __init__(
        self, bot: Bot, chat_id: int, *, reply_to: int | None, interval: float, buttons: bool,
        patience: float = PATIENCE, sent: Sequence[str] = (),
        on_sent: Callable[[list[str]], Awaitable[None]] | None = None,
        pace: ChatPace | None = None,
        on_answer: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.bot, self.chat_id, self.reply_to = bot, chat_id, reply_to
        self.buttons = buttons
        self.patience = patience  # per call, from its start: not from when the reply queued
        self._on_sent = on_sent
        self._on_answer = on_answer  # the ids, on the sends' thread, as soon as Telegram answers
        self._interval, self._pace = interval, pace
        self._stream = StreamingSink(
            self._send, self._edit, limit=MessageLimit.MAX_TEXT_LENGTH,
            interval=pace.stream_interval(interval) if pace else interval,
            sent=list(sent), may_update=pace.spare if pace else lambda: True,
        )
        self._typing: asyncio.Task | None = None
        self._unsure = False  # a send timed out: it may have arrived, so nothing more is sent

    def _deadline(self) -> float:
        return time.monotonic() + self.patience

    @property
    def ids(self) -> list[str]:
        """The ids of the messages that show (part of) this reply so far."""
        return self._stream.ids

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

    def another(self) -> TelegramReply:
        """A sink for one more message in this chat, after this one (a /compare sends one per
        engine); its ids are not recorded for redelivery, only the command's own are."""
        return TelegramReply(self.bot, self.chat_id, reply_to=None, interval=self._interval,
                             buttons=self.buttons, pace=self._pace)

    uploads = True  # send_file puts the file itself in the chat

    async def send_file(self, path: Path, caption: str) -> None:
        """A file as a document (a loss curve, say), in the chat of this reply."""
        data = path.read_bytes()  # bytes, not a file object: a retry must send it whole again
        await patiently(lambda: self._paced(lambda: self.bot.send_document(
            self.chat_id, document=data, filename=path.name, caption=caption,
            read_timeout=SEND_READ_TIMEOUT,
        )), deadline=self._deadline(), repeatable=False)

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
        if self._unsure:
            raise TimeoutError("an earlier send of this reply may have arrived; not sending more")
        heard = telegram_sends.on_answer.set(self._answered if self._on_answer else None)
        try:
            message = await patiently(lambda: self._paced(lambda: self.bot.send_message(
                self.chat_id, text, reply_parameters=reply, reply_markup=self._markup,
                read_timeout=SEND_READ_TIMEOUT,
            )), deadline=self._deadline(), repeatable=False)
        except TimedOut:
            self._unsure = True
            raise
        finally:
            telegram_sends.on_answer.reset(heard)
        self.stop_typing()
        if self._on_sent is not None:
            try:
                await self._on_sent([*self.ids, str(message.message_id)])
            except Exception:  # the id is in the journal; the stream must still know it
                log.exception("telegram: could not keep the id of a sent message")
        return str(message.message_id)

    def _answered(self, message_id: str) -> None:
        """On the sends' thread (telegram_sends.py): Telegram named the new message."""
        if self._on_answer is not None:
            self._on_answer([*self.ids, message_id])

    async def _edit(self, message_id: str, text: str) -> None:
        try:
            await patiently(lambda: self._paced(lambda: self.bot.edit_message_text(
                text, chat_id=self.chat_id, message_id=int(message_id), reply_markup=self._markup,
            )), deadline=self._deadline())
        except BadRequest as exc:
            if not not_modified(exc):
                raise

    async def _paced(self, call: Callable[[], Awaitable[T]]) -> T:
        """One request, in its turn where the chat is paced (each retry takes a turn too)."""
        if self._pace is None:
            return await call()
        async with self._pace.slot():
            return await call()

    async def _keep_typing(self) -> None:
        while True:
            with contextlib.suppress(TelegramError):
                await self.bot.send_chat_action(self.chat_id, ChatAction.TYPING)
            await asyncio.sleep(TYPING_EVERY)
