"""Discord: gateway events in, neutral events to the router, replies out.

The bot answers DMs, messages that mention it or reply to it, and every message in the
channels of [discord] channels; never itself or other bots. Slash commands are the neutral
commands (discord_commands.py). Reactions on its replies become votes. discord.py runs with
`login()` and `connect()` in a task of the bot's one event loop, never `Client.run()`.

What is addressed to the bot is kept before it is answered (discord_inbox.py): at start, what
an earlier run left is answered first (editing a reply it froze mid-stream), and after each
connect the bot catches up on what arrived while it was away (discord_catchup.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
import discord

from bot import commands
from bot.config import TOKEN_ENV, ConfigError, between
from bot.events import Incoming, Reaction
from bot.frontends import Frontend
from bot.frontends.discord_catchup import CatchUp
from bot.frontends.discord_commands import LocaleTranslator, build_tree
from bot.frontends.discord_inbox import DiscordInbox, Kept, key_of
from bot.frontends.discord_interaction import InteractionWrites
from bot.frontends.discord_routes import RoutedClient, Routes, use_webhook_routes
from bot.frontends.stream import Edit, Send, StreamingSink
from bot.frontends.typing import ChatTyping
from bot.i18n import t

if TYPE_CHECKING:
    from bot.router import Router

log = logging.getLogger(__name__)
# This bot never joins voice channels: spare the log discord.py's warnings about voice libraries.
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False

MESSAGE_LIMIT = 2000  # characters in one Discord message
# Nothing the bot sends may ping anyone: ELIZA echoes what people write.
NO_MENTIONS = discord.AllowedMentions.none()
INTENTS = discord.Intents(
    guilds=True, guild_messages=True, dm_messages=True, message_content=True,
    guild_reactions=True, dm_reactions=True,
)
ENABLE_INTENT = ("enable the Message Content intent for this bot (developer portal -> your "
                 "application -> Bot -> Privileged Gateway Intents)")


@dataclass(frozen=True)
class DiscordOptions:
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    dev_guild: str = ""  # a server id: slash commands sync there at once; empty: globally
    channels: list[str] = field(default_factory=list)  # channel ids where every message is answered
    edit_interval: float = 1.0  # seconds between edits of a reply that is still streaming
    vote_hint: bool = False  # put 👍/👎 under each reply, inviting votes
    # After a restart or reconnect: what arrived while the bot was away is answered if it is
    # at most this old (0: nothing is caught up, and nothing left over is answered) ...
    catch_up_minutes: float = field(default=60.0, metadata=between(0, 1440))
    # ... among at most this many of each channel's newest messages
    catch_up_messages: int = field(default=100, metadata=between(0, 1000))


class DiscordSink(StreamingSink):
    """A StreamingSink that remembers the ids of the messages its reply ended up in, and sends
    files to its channel as attachments. `sent`: ids an earlier run's answer showed (edited,
    not sent again); `on_sent` hears the ids so far each time Discord names a new one."""

    sent: tuple[str, ...] = ()
    channel: Any = None  # where send_file posts; set by the frontend

    def __init__(self, send: Send, edit: Edit, *, limit: int, interval: float,
                 sent: Sequence[str] = (),
                 on_sent: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
        self._plain_send, self._on_sent = send, on_sent
        super().__init__(self._send_kept if on_sent else send, edit, limit=limit,
                         interval=interval, sent=list(sent))

    async def _send_kept(self, text: str) -> str:
        message_id = await self._plain_send(text)
        if self._on_sent is not None:
            try:
                await self._on_sent([*self.ids, message_id])
            except Exception:  # the stream must still know it
                log.exception("discord: could not keep the id of a sent message")
        return message_id

    uploads = True  # send_file puts the file itself in the chat

    async def send_file(self, path: Path, caption: str) -> None:
        await self.channel.send(caption, file=discord.File(path), allowed_mentions=NO_MENTIONS)

    async def finish(self, text: str) -> list[str]:
        ids = await super().finish(text)
        self.sent = tuple(ids)
        return ids

    def another(self) -> DiscordSink:
        """A sink for one more message in the same channel (or interaction), sent the same way
        (a /compare sends one per engine)."""
        sink = DiscordSink(self._plain_send, self._edit, limit=self.limit,
                           interval=self.interval)
        sink.channel = self.channel
        return sink


class DiscordFrontend(Frontend):
    platform: ClassVar[str] = "discord"
    Options: ClassVar[type] = DiscordOptions

    def __init__(self, options: DiscordOptions, config: Any, token: str) -> None:
        _check_ids(options)
        self.options = options
        self.config = config
        self.token = token
        self.routes = Routes(options.api_base, options.gateway_url)
        self.client: RoutedClient | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._warned_empty = False
        self.inbox: DiscordInbox | None = None
        self.catch_up: CatchUp | None = None
        self.typing = ChatTyping()
        self._interactions: dict[str, discord.Interaction] = {}  # inbox key -> live, unanswered

    # lifecycle

    async def start(self, router: Router) -> None:
        """Log in and sync the slash commands (a bad token fails here), then connect."""
        self.router = router
        self.client = RoutedClient(self.routes, intents=INTENTS, allowed_mentions=NO_MENTIONS)
        for handler in (self.on_ready, self.on_message,
                        self.on_raw_reaction_add, self.on_raw_reaction_remove):
            setattr(self.client, handler.__name__, handler)
        self.inbox = DiscordInbox(router, self._answer)
        self.catch_up = CatchUp(self.client, self.inbox, self._addressed_incoming,
                                self.options.catch_up_minutes, self.options.catch_up_messages)
        try:
            await self.client.login(self.token)
            await self._sync_commands(router)
        except BaseException as exc:
            await self.client.close()
            raise self._start_failure(exc) from None
        await self._resume()
        self._task = asyncio.create_task(self._connect(), name="discord")

    async def _resume(self) -> None:
        """Answer what an earlier run kept and did not finish, oldest first (REST only: the
        gateway is not needed to send)."""
        left = await self._inbox().left_over()
        for kept in left:
            self._inbox().spawn(kept)
        if left:
            log.warning("discord: answering %d message(s) left over by the last run", len(left))

    def _start_failure(self, exc: BaseException) -> BaseException:
        """What a failed start says: one line (the exit code 2 of a config error) for what the
        user can fix, the exception itself for anything else."""
        where = self.options.api_base
        if isinstance(exc, discord.LoginFailure):  # its message says little; ours hides the token
            return ConfigError(f"discord: {where} refused {TOKEN_ENV[self.platform]}; reset and "
                               "copy the bot's token (developer portal -> your application -> Bot)")
        if isinstance(exc, OSError | aiohttp.ClientError | asyncio.TimeoutError):
            return ConfigError(f"discord: cannot reach {where}: {_first_line(exc)}")
        if isinstance(exc, discord.HTTPException):  # e.g. a dev_guild the bot is not in
            return ConfigError(f"discord: {where} refused the start ({exc.status}): "
                               f"{_first_line(exc)}")
        return exc

    async def _sync_commands(self, router: Any) -> None:
        guild = discord.Object(int(self.options.dev_guild)) if self.options.dev_guild else None
        tree = build_tree(self._live(), self.run_command, router.services, guild)
        await tree.set_translator(LocaleTranslator())
        synced = await tree.sync(guild=guild)
        log.info("discord: %d slash commands synced %s", len(synced),
                 f"to server {guild.id}" if guild else "globally (may take a while to show)")

    async def _connect(self) -> None:
        use_webhook_routes(self.routes)  # for this task and every handler it starts
        try:
            await self._live().connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            log.error("discord: the gateway refused the connection: %s", ENABLE_INTENT)
            raise

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        self._stopping = True  # the app has drained the router: no reply is in flight
        if self.client is not None:
            await self.client.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.inbox is not None:
            await self.inbox.stop()

    def _inbox(self) -> DiscordInbox:
        if self.inbox is None:
            raise RuntimeError("discord: not started")
        return self.inbox

    def _live(self) -> RoutedClient:
        if self.client is None:
            raise RuntimeError("discord: not started")
        return self.client

    def _user(self) -> discord.ClientUser:
        """The bot's own account, known once logged in."""
        user = self._live().user
        if user is None:
            raise RuntimeError("discord: not logged in")
        return user

    # gateway events

    async def on_ready(self) -> None:
        user = self._user()
        log.info("discord: connected as %s (%s)", user, user.id)
        if self.catch_up is not None:
            await self.catch_up.run()

    async def on_message(self, message: discord.Message) -> None:
        if self._stopping:
            return
        incoming = self._addressed_incoming(message)
        if incoming is not None:
            # Kept before it is answered; while the bot drains for a stop, kept only: the
            # next run answers it.
            await self._inbox().take(incoming, answer=self.router.accepting)

    def _addressed_incoming(self, message: discord.Message) -> Incoming | None:
        """The Incoming of a message addressed to the bot; None for anything else."""
        if message.author.bot or message.author.id == self._user().id:
            return None
        if not self._addressed(message):
            return None
        text = self._text(message)
        if not text:
            self._warn_empty(message)
            return None
        return self._incoming(message, text)

    async def _answer(self, kept: Kept) -> bool:
        """Answer one kept message (the inbox's task); False if the bot is stopping."""
        incoming = kept.incoming
        channel = self._messageable(incoming.chat_id)
        is_command = commands.parse(incoming.text) is not None
        if kept.resumed and not is_command and self._too_old(kept.received_at):
            await self._leave_unanswered(channel, kept)
            return True
        slash = kept.interaction is not None
        sink = self._command_sink(kept, channel) if slash else \
            self._message_sink(channel, incoming.message_id, kept)
        if not self.router.accepting:
            return False
        typing = contextlib.nullcontext() if slash else \
            self.typing.shown(incoming.chat_id, lambda: _keep_typing(channel))
        async with typing:  # a slash command shows "thinking…" instead
            await self.router.handle(incoming, sink)
        if self.options.vote_hint and sink.sent and not is_command:
            await self._hint_votes(channel, sink.sent[-1])
        return True

    def _too_old(self, received_at: float) -> bool:
        return time.time() - received_at > self.options.catch_up_minutes * 60

    async def _leave_unanswered(self, channel: Any, kept: Kept) -> None:
        """Kept before a restart too long ago to answer now: stored, not answered, and a reply
        frozen mid-stream is marked cut off."""
        await self.router.store_unanswered(kept.incoming)
        if not kept.sent:
            return
        lang = await self.router.chat_lang(self.platform, kept.incoming.chat_id)
        try:
            frozen = await channel.fetch_message(int(kept.sent[-1]))
            await frozen.edit(content=f"{frozen.content.rstrip()} {t(lang, 'cut_off')}",
                              allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            log.warning("discord: could not mark a reply cut off", exc_info=True)

    def _messageable(self, channel_id: str) -> Any:
        """The channel to answer in: the cached one, or (a DM after a restart) a partial one
        that can send, edit and type all the same."""
        client = self._live()
        return client.get_channel(int(channel_id)) or \
            client.get_partial_messageable(int(channel_id))

    def _addressed(self, message: discord.Message) -> bool:
        me = self._user().id
        if message.guild is None or str(message.channel.id) in self.options.channels:
            return True
        if any(user.id == me for user in message.mentions):
            return True
        reference = message.reference
        if reference is None:
            return False
        replied = reference.resolved if isinstance(reference.resolved, discord.Message) \
            else reference.cached_message
        return replied is not None and replied.author.id == me

    def _text(self, message: discord.Message) -> str:
        return re.sub(rf"<@!?{self._user().id}>", "", message.content).strip()

    def _warn_empty(self, message: discord.Message) -> None:
        if message.content or message.attachments or message.stickers or message.embeds:
            return
        if not self._warned_empty:
            log.warning("discord: messages arrive without their text: %s", ENABLE_INTENT)
        self._warned_empty = True

    def _incoming(self, message: discord.Message, text: str) -> Incoming:
        reply_to = message.reference.message_id if message.reference else None
        return Incoming(
            platform=self.platform, chat_id=str(message.channel.id),
            user_id=str(message.author.id), text=text, user_name=message.author.display_name,
            message_id=str(message.id), reply_to=str(reply_to or ""),
            is_admin=_manages_server(message.author), is_group=message.guild is not None,
            chat_title=getattr(message.channel, "name", None) or "",
            server_id=str(message.guild.id) if message.guild else "",
            roles=_role_ids(message.author),
        )

    def _message_sink(self, channel: Any, message_id: str, kept: Kept) -> DiscordSink:
        if isinstance(channel, discord.GroupChannel):  # no bot is ever in a group DM
            raise TypeError("discord: a bot cannot answer in a group DM")
        reference: discord.MessageReference | None = discord.MessageReference(
            message_id=int(message_id), channel_id=channel.id, fail_if_not_exists=False)
        if kept.sent:
            reference = None  # the first part is out already, answering the message

        async def send(text: str) -> str:
            nonlocal reference  # only the first part answers the message; the rest follow it
            # discord.py takes None for no reference (abc.py: `if reference is not None`)
            sent = await channel.send(text, reference=reference, allowed_mentions=NO_MENTIONS)
            reference = None
            return str(sent.id)

        async def edit(message_id: str, text: str) -> None:
            partial = channel.get_partial_message(int(message_id))
            await partial.edit(content=text, allowed_mentions=NO_MENTIONS)

        sink = DiscordSink(send, edit, limit=MESSAGE_LIMIT, interval=self.options.edit_interval,
                           sent=kept.sent, on_sent=self._inbox().recorder(kept.key))
        sink.channel = channel
        return sink

    async def _hint_votes(self, channel: Any, message_id: str) -> None:
        partial = channel.get_partial_message(int(message_id))
        try:
            for emoji in (self.config.feedback.up[0], self.config.feedback.down[0]):
                await partial.add_reaction(emoji)
        except discord.HTTPException:
            log.warning("discord: could not add vote hints", exc_info=True)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self._react(payload, added=True)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self._react(payload, added=False)

    async def _react(self, payload: discord.RawReactionActionEvent, added: bool) -> None:
        me = self._user().id
        if self._stopping or payload.user_id == me or payload.message_author_id not in (None, me):
            return
        if payload.member is not None and payload.member.bot:
            return
        await self.router.react(Reaction(
            platform=self.platform, chat_id=str(payload.channel_id),
            user_id=str(payload.user_id), message_id=str(payload.message_id),
            emoji=str(payload.emoji), added=added,
            user_name=payload.member.display_name if payload.member else "",
            is_group=payload.guild_id is not None,
            server_id=str(payload.guild_id or ""), roles=_role_ids(payload.member),
        ))

    # slash commands

    async def run_command(self, interaction: discord.Interaction, name: str, argument: str) -> None:
        """Acknowledge at once (Discord allows 3 s), keep it, then answer by editing that
        response (discord_interaction.py)."""
        if self._stopping:
            return
        await interaction.response.defer(thinking=True)
        in_server = interaction.guild_id is not None
        incoming = Incoming(
            platform=self.platform, chat_id=str(interaction.channel_id),
            user_id=str(interaction.user.id), text=f"/{name} {argument}".strip(),
            user_name=interaction.user.display_name, message_id=str(interaction.id),
            is_admin=in_server and interaction.permissions.manage_guild, is_group=in_server,
            chat_title=getattr(interaction.channel, "name", None) or "",
            server_id=str(interaction.guild_id or ""), roles=_role_ids(interaction.user),
        )
        key = key_of(incoming.chat_id, incoming.message_id)
        self._interactions[key] = interaction  # for the answer: _command_sink takes it
        created = {"created_at": interaction.created_at.timestamp()}
        if not await self._inbox().take(incoming, created, answer=self.router.accepting):
            self._interactions.pop(key, None)

    def _command_sink(self, kept: Kept, channel: Any) -> DiscordSink:
        """The live interaction's while its token lives; channel messages after, or after a
        restart (discord_interaction.py)."""
        interaction = self._interactions.pop(kept.key, None)
        created_at = (kept.interaction or {}).get("created_at", kept.received_at)
        writes = InteractionWrites(interaction, channel, created_at)
        sink = DiscordSink(writes.send, writes.edit, limit=MESSAGE_LIMIT,
                           interval=self.options.edit_interval, sent=kept.sent,
                           on_sent=self._inbox().recorder(kept.key))
        sink.channel = channel  # a file goes to the channel, beside the answer
        return sink


def _check_ids(options: DiscordOptions) -> None:
    for key, ids in (("dev_guild", [options.dev_guild] if options.dev_guild else []),
                     ("channels", options.channels)):
        for value in ids:
            if not value.isdigit():
                raise ConfigError(f'[discord] {key}: expected ids (digits, "Copy ID" in '
                                  f'Discord\'s developer mode), got "{value}"')


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _role_ids(user: Any) -> tuple[str, ...]:
    """A server member's role ids, for [access] (none for a user in a DM)."""
    return tuple(str(role.id) for role in user.roles) if isinstance(user, discord.Member) \
        else ()


def _manages_server(user: discord.abc.User) -> bool:
    return isinstance(user, discord.Member) and user.guild_permissions.manage_guild


async def _keep_typing(channel: Any) -> None:
    try:
        async with channel.typing():
            await asyncio.Event().wait()  # until cancelled
    except (discord.HTTPException, OSError, aiohttp.ClientError):
        log.debug("discord: no typing indicator in %s", channel, exc_info=True)
