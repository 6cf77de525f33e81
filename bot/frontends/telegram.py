"""Telegram: python-telegram-bot updates in, neutral events to the router, replies out.

Started with PTB's async methods (initialize, start, updater.start_polling) inside the bot's one
event loop, never run_polling(). Each message is answered in a task of its own, so a slow
engine in one chat never holds up another; the router keeps each chat's messages in order.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

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

from bot import commands
from bot.config import ConfigError
from bot.events import Incoming, Reaction
from bot.frontends.telegram_address import is_group, text_for_bot
from bot.frontends.telegram_reply import VOTES, TelegramReply, patiently
from bot.i18n import t

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "message_reaction", "callback_query"]


@dataclass(frozen=True)
class TelegramOptions:
    base_url: str = "https://api.telegram.org/bot"  # or a self-hosted Bot API server's
    group_mode: Literal["mention", "always"] = "mention"
    edit_interval: float = 1.0  # seconds between edits of a streamed reply
    vote_buttons: bool = True  # 👍/👎 buttons under each reply
    admin_cache_seconds: float = 300.0  # how long a group's admin list is trusted
    poll_timeout: float = 10.0  # seconds one getUpdates long poll waits for news


class TelegramFrontend:
    platform: ClassVar[str] = "telegram"
    Options: ClassVar[type] = TelegramOptions
    token_env: ClassVar[str] = "TELEGRAM_TOKEN"

    def __init__(self, options: TelegramOptions, config: Any, token: str) -> None:
        self.options = options
        self.config = config
        self.app = Application.builder().token(token).base_url(options.base_url).build()
        self.router: Any = None
        self._admins: dict[int, tuple[float, set[int]]] = {}  # chat -> (until, user ids)
        self._tasks: set[asyncio.Task] = set()
        self._stopped = asyncio.Event()

    async def start(self, router: Any) -> None:
        self.router = router
        self.app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT,
                                            self._on_message))
        self.app.add_handler(MessageReactionHandler(self._on_reaction))
        self.app.add_handler(CallbackQueryHandler(self._on_button, pattern=r"^vote:"))
        self.app.add_error_handler(self._on_error)
        try:
            await self.app.initialize()  # getMe: a bad token fails here
            await self._register_commands()
            await self.app.start()
            await self.app.updater.start_polling(
                timeout=dtm.timedelta(seconds=self.options.poll_timeout),
                allowed_updates=ALLOWED_UPDATES,
            )
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, InvalidToken):  # PTB's message would show the token
                raise ConfigError(f"telegram: the Bot API at {self.options.base_url} refused "
                                  f"{self.token_env}; ask @BotFather for the token") from None
            if isinstance(exc, NetworkError):
                raise ConfigError(f"telegram: cannot reach {self.options.base_url}: {exc}") \
                    from None
            raise
        log.info("telegram: polling as @%s", self.app.bot.username)

    async def wait(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        if self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        for task in self._tasks:  # the app has drained the router: these are done or idle
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.app.shutdown()
        await self.app.bot.shutdown()  # also after a failed start, which app.shutdown skips
        self._stopped.set()

    async def _register_commands(self) -> None:
        """The command menu, in English for everyone and in German for German clients."""
        for code, lang in ((None, "en"), ("de", "de")):
            menu = [BotCommand(name, commands.summary(name, lang)
                               [: BotCommandLimit.MAX_DESCRIPTION]) for name in commands.COMMANDS]
            try:
                await patiently(lambda menu=menu, code=code:
                                self.app.bot.set_my_commands(menu, language_code=code))
            except TelegramError:  # the bot works without a menu; say so and go on
                log.warning("telegram: could not set the %s command menu", lang, exc_info=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(_logged(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # messages ---------------------------------------------------------------------------

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        text = text_for_bot(message, self.app.bot.bot, self.options.group_mode)
        if text is None:
            return
        parsed = commands.parse(text)
        if parsed and parsed[0] == "start" and "start" not in commands.COMMANDS:
            text = "/help"  # Telegram sends /start when someone opens a chat with the bot
        is_command = parsed is not None
        # Decided here, in update order, so that a chat's messages reach the router in order.
        admin = is_command and await self._is_chat_admin(message)
        self._spawn(self._answer(self._incoming(message, text, admin), message, is_command))

    def _incoming(self, message: Message, text: str, is_admin: bool) -> Incoming:
        sender, replied = message.from_user, message.reply_to_message
        return Incoming(
            platform="telegram", chat_id=str(message.chat.id), user_id=str(sender.id),
            user_name=sender.full_name, text=text, message_id=str(message.message_id),
            reply_to=str(replied.message_id) if replied else "", is_admin=is_admin,
            is_group=is_group(message), chat_title=message.chat.title or "",
        )

    async def _answer(self, incoming: Incoming, message: Message, is_command: bool) -> None:
        reply = TelegramReply(
            self.app.bot, message.chat.id, interval=self.options.edit_interval,
            reply_to=message.message_id if incoming.is_group else None,
            buttons=self.options.vote_buttons and not is_command,  # votes are for engine replies
        )
        if not is_command:
            reply.start_typing()
        try:
            await self.router.handle(incoming, reply)
        finally:
            reply.stop_typing()

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
        return message.from_user.id in admins

    # feedback ---------------------------------------------------------------------------

    async def _on_reaction(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        # A task of its own: the router waits for the chat's turn (a reply still streaming
        # must be stored before a vote can find it), and PTB handles updates one at a time.
        self._spawn(self._vote_by_reaction(update))

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
                user_name=change.user.full_name,
            ))

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self._spawn(self._vote_by_button(update))

    async def _vote_by_button(self, update: Update) -> None:
        query = update.callback_query
        emoji, value = VOTES.get(query.data or "", ("", 0))
        message = query.message
        voted = False
        if value and message is not None:
            voted = await self.router.vote(Reaction(
                platform="telegram", chat_id=str(message.chat.id),
                user_id=str(query.from_user.id), message_id=str(message.message_id),
                emoji=emoji, user_name=query.from_user.full_name,
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
