"""Telegram: python-telegram-bot updates in, neutral events to the router, replies out.

Started with PTB's async methods (initialize, start) inside the bot's one event loop, never
run_polling(); updates come from our own Poller, which keeps each one in the durable inbox
before Telegram is told it arrived, and an update is marked handled when its answer is done.
At start, what was kept and not handled (a bot killed midway) is handled first, editing the
messages an answer had already sent. Each message is answered in a task of its own, so a slow
engine in one chat never holds up another; the router keeps each chat's messages in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from telegram import BotCommand, Message, Update
from telegram.constants import BotCommandLimit, ChatType
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    MessageReactionHandler,
    filters,
)

from bot import commands, logs
from bot.config import TOKEN_ENV, ConfigError, between
from bot.events import Incoming, Reaction
from bot.frontends import Frontend
from bot.frontends.telegram_address import is_group, text_for_bot
from bot.frontends.telegram_pace import Pacing
from bot.frontends.telegram_poll import Poller
from bot.frontends.telegram_reply import VOTES, TelegramReply, patiently
from bot.frontends.telegram_sends import ThreadedSends
from bot.frontends.telegram_sent import SentJournal
from bot.frontends.typing import ChatTyping

if TYPE_CHECKING:
    from bot.router import Router
from bot.i18n import t

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "message_reaction", "callback_query"]


@dataclass(frozen=True)
class TelegramOptions:
    base_url: str = "https://api.telegram.org/bot"  # or a self-hosted Bot API server's
    group_mode: Literal["mention", "always"] = "mention"
    edit_interval: float = 1.0  # seconds between edits of a streamed reply
    # Telegram allows about 20 messages (edits included) a minute in a group: telegram_pace
    group_messages: int = field(default=18, metadata=between(2, 20))
    group_window: float = field(default=60.0, metadata=between(0.1, 3600))  # seconds
    vote_buttons: bool = True  # 👍/👎 buttons under each reply
    admin_cache_seconds: float = 300.0  # how long a group's admin list is trusted
    poll_timeout: float = 10.0  # seconds one getUpdates long poll waits for news
    answer_within: float = 3600.0  # seconds; older messages found after a restart are stored,
    #                                not answered (the conversation has moved on)


class TelegramFrontend(Frontend):
    platform: ClassVar[str] = "telegram"
    Options: ClassVar[type] = TelegramOptions

    def __init__(self, options: TelegramOptions, config: Any, token: str) -> None:
        self.options = options
        self.config = config
        self.app = (Application.builder().token(token).base_url(options.base_url)
                    .request(ThreadedSends())  # a sent message's id recorded at once
                    .updater(None).build())  # our Poller fetches: see the module docstring
        self.poller = Poller(self.app.bot, self._keep, self._hand,
                             timeout=options.poll_timeout, allowed_updates=ALLOWED_UPDATES)
        self._resumed: dict[str, list[str]] = {}  # update key -> reply ids sent before a restart
        self._stale: set[str] = set()  # update keys too old to answer after a restart
        self._spawned: set[str] = set()
        self.journal = SentJournal(config.data_dir / "telegram-sent.jsonl")
        self._admins: dict[int, tuple[float, set[int]]] = {}  # chat -> (until, user ids)
        self.pacing = Pacing(options.group_messages, options.group_window)
        self._tasks: set[asyncio.Task] = set()
        self._stopped = asyncio.Event()
        self.typing = ChatTyping()  # one "typing…" per chat, however many wait their turn

    async def start(self, router: Router) -> None:
        self.router = router
        self.app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT,
                                            self._on_message))
        self.app.add_handler(MessageReactionHandler(self._on_reaction))
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        self.app.add_error_handler(self._on_error)
        try:
            await self.app.initialize()  # getMe: a bad token fails here
            await self._register_commands()
            await self.app.start()
            await patiently(self.app.bot.delete_webhook)  # polling and a webhook exclude each other
            await self._resume()
            self.poller.start()
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, InvalidToken):  # PTB's message would show the token
                raise ConfigError(f"telegram: the Bot API at {self.options.base_url} refused "
                                  f"{TOKEN_ENV[self.platform]}; ask @BotFather for the token") \
                    from None
            if isinstance(exc, NetworkError):
                raise ConfigError(f"telegram: cannot reach {self.options.base_url}: {exc}") \
                    from None
            raise
        log.info("telegram: polling as @%s", self.app.bot.username)

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop_intake(self) -> None:
        """Take no new updates (nothing is confirmed that will not be handled)."""
        await self.poller.stop()

    async def stop(self) -> None:
        await self.poller.stop()
        if self.app.running:
            await self.app.stop()
        for task in self._tasks:  # the app has drained the router: these are done or idle
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.app.shutdown()
        await self.app.bot.shutdown()  # also after a failed start, which app.shutdown skips
        self.journal.close()
        self._stopped.set()

    async def _register_commands(self) -> None:
        """The command menu, in English for everyone and in German for German clients."""
        for code, lang in ((None, "en"), ("de", "de")):
            menu = [BotCommand(name, commands.summary(name, lang)
                               [: BotCommandLimit.MAX_DESCRIPTION]) for name in commands.COMMANDS]
            try:
                await patiently(partial(self.app.bot.set_my_commands, menu, language_code=code))
            except TelegramError:  # the bot works without a menu; say so and go on
                log.warning("telegram: could not set the %s command menu", lang, exc_info=True)

    # the durable inbox ----------------------------------------------------------------------

    async def _keep(self, update: Update) -> bool:
        return await self.router.received("telegram", str(update.update_id), update.to_dict())

    async def _hand(self, update: Update) -> None:
        """Run the handlers; an update that none of them takes on is handled at once."""
        key = str(update.update_id)
        try:
            await self.app.process_update(update)
        except Exception:
            log.exception("telegram: update %s failed", key)
        if key not in self._spawned:
            await self.router.handled("telegram", key)

    async def _resume(self) -> None:
        """Handle what an earlier run kept and did not finish, oldest first, editing what its
        answers had already sent (the journal may know ids the database did not hear of)."""
        journal, kept = self.journal.read(), await self.router.unhandled("telegram")
        for update in kept:
            ids = max(update.reply_ids, journal.get(update.key, []), key=len)
            if ids != update.reply_ids:
                await self.router.replying("telegram", update.key, ids)
            self._resumed[update.key] = ids
            if time.time() - update.received_at > self.options.answer_within:
                self._stale.add(update.key)
        self.journal.open()  # emptied: everything it knew is in the database now
        for update in kept:
            await self._hand(Update.de_json(update.payload, self.app.bot))
        if kept:
            log.warning("telegram: handled %d update(s) left over by the last run", len(kept))

    def _spawn(self, coro: Any, update: Update) -> None:
        key = str(update.update_id)
        self._spawned.add(key)
        chat = update.effective_chat
        task = asyncio.create_task(self._handled_after(coro, key, chat.id if chat else None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handled_after(self, coro: Any, key: str, chat_id: int | None) -> None:
        with logs.fields(chat=f"telegram:{chat_id}" if chat_id is not None else None):
            await _logged(coro)  # answered, or failed for good: either way not again
        await self.router.handled("telegram", key)
        self._spawned.discard(key)
        self._resumed.pop(key, None)
        if not self._spawned:
            self.journal.clear()

    async def _sent(self, key: str, ids: list[str]) -> None:
        self.journal.write(key, ids)  # first: one system call, durable against kill -9
        await self.router.replying("telegram", key, ids)

    # messages ---------------------------------------------------------------------------

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None:  # a channel's post has no sender
            return
        text = text_for_bot(message, self.app.bot.bot, self.options.group_mode)
        if text is None:
            return
        parsed = commands.parse(text)
        if parsed and parsed[0] == "start" and "start" not in commands.COMMANDS:
            text = "/help"  # Telegram sends /start when someone opens a chat with the bot
        is_command = parsed is not None
        # Decided here, in update order, so that a chat's messages reach the router in order.
        admin = is_command and await self._is_chat_admin(message)
        key = str(update.update_id)
        incoming = self._incoming(message, text, admin, key in self._resumed)
        self._spawn(self._answer(incoming, message, is_command, key), update)

    def _incoming(self, message: Message, text: str, is_admin: bool,
                  redelivered: bool = False) -> Incoming:
        sender, replied = message.from_user, message.reply_to_message
        assert sender is not None  # _on_message passes on only messages with a sender
        return Incoming(
            platform="telegram", chat_id=str(message.chat.id), user_id=str(sender.id),
            user_name=sender.full_name, text=text, message_id=str(message.message_id),
            reply_to=str(replied.message_id) if replied else "", is_admin=is_admin,
            is_group=is_group(message), chat_title=message.chat.title or "",
            redelivered=redelivered,
        )

    async def _answer(self, incoming: Incoming, message: Message, is_command: bool,
                      key: str) -> None:
        if key in self._stale and not is_command:  # a /forget is carried out, however late
            await self.router.store_unanswered(incoming)
            return
        reply = TelegramReply(
            self.app.bot, message.chat.id, interval=self.options.edit_interval,
            reply_to=message.message_id if incoming.is_group else None,
            buttons=self.options.vote_buttons and not is_command,  # votes are for engine replies
            patience=self.config.bot.reply_timeout, sent=self._resumed.get(key, []),
            on_sent=lambda ids: self._sent(key, ids),
            on_answer=lambda ids: self.journal.write(key, ids),  # on the sends' thread
            pace=self.pacing.for_chat(message.chat.id, incoming.is_group),
        )
        typing = contextlib.nullcontext() if is_command else \
            self.typing.shown(incoming.chat_id, reply._keep_typing)
        async with typing:
            await self.router.handle(incoming, reply)

    async def _is_chat_admin(self, message: Message) -> bool:
        """The owner of a private chat, or an administrator of a group (cached a while)."""
        if message.chat.type == ChatType.PRIVATE:
            return True
        until, admins = self._admins.get(message.chat.id, (0.0, set()))
        if until < time.monotonic():
            try:
                members = await patiently(message.chat.get_administrators)
            except Exception:
                log.warning("telegram: no admin list for chat %s", message.chat.id, exc_info=True)
                return False
            admins = {member.user.id for member in members}
            self._admins[message.chat.id] = (
                time.monotonic() + self.options.admin_cache_seconds, admins)
        return message.from_user is not None and message.from_user.id in admins

    # feedback ---------------------------------------------------------------------------

    async def _on_reaction(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        # A task of its own: the router waits for the chat's turn (a reply still streaming
        # must be stored before a vote can find it), and PTB handles updates one at a time.
        self._spawn(self._vote_by_reaction(update), update)

    async def _vote_by_reaction(self, update: Update) -> None:
        """Reactions as votes: what was taken off is unvoted first, then what was put on."""
        change = update.message_reaction
        if change is None or change.user is None:  # anonymous: no one to credit the vote to
            return
        old, new = _emojis(change.old_reaction), _emojis(change.new_reaction)
        changes = [(e, False) for e in old - new] + [(e, True) for e in new - old]
        for emoji, added in changes:
            await self.router.react(Reaction(
                platform="telegram", chat_id=str(change.chat.id), user_id=str(change.user.id),
                message_id=str(change.message_id), emoji=emoji, added=added,
                user_name=change.user.full_name, is_group=change.chat.type != ChatType.PRIVATE,
            ))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self._spawn(self._vote_by_button(update), update)

    async def _vote_by_button(self, update: Update) -> None:
        query = update.callback_query
        if query is None:
            return
        if query.data not in VOTES:  # an old keyboard, or made up: answered all the same
            await patiently(lambda: query.answer(t(self.config.bot.language, "button_unknown")))
            return
        emoji, value = VOTES[query.data]
        message = query.message
        voted = False
        if value and message is not None:
            voted = await self.router.vote(Reaction(
                platform="telegram", chat_id=str(message.chat.id),
                user_id=str(query.from_user.id), message_id=str(message.message_id),
                emoji=emoji, user_name=query.from_user.full_name,
                is_group=message.chat.type != ChatType.PRIVATE,
            ), value)
        lang = await self._chat_lang(str(message.chat.id)) if message else self.config.bot.language
        answer = t(lang, "vote_button_saved", vote=emoji) if voted \
            else t(lang, "vote_button_unknown")
        await patiently(lambda: query.answer(answer))

    async def _chat_lang(self, chat_id: str) -> str:
        return await self.router.chat_lang("telegram", chat_id)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: update failed: %s", context.error, exc_info=context.error)


async def _logged(coro: Any) -> None:
    try:
        await coro
    except Exception:  # a reply that cannot be delivered must not end the bot
        log.exception("telegram: could not answer")


def _emojis(reactions: Any) -> set[str]:
    return {r.emoji for r in reactions if getattr(r, "emoji", None)}
