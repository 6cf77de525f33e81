"""Discord: gateway events in, neutral events to the router, replies out.

The bot answers DMs, messages that mention it or reply to it, and every message in the
channels of [discord] channels; never itself or other bots. Slash commands are the neutral
commands (discord_commands.py). Reactions on its replies become votes. discord.py runs with
`login()` and `connect()` in a task of the bot's one event loop, never `Client.run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import discord

from bot import commands, logs
from bot.config import ConfigError
from bot.events import Incoming, Reaction
from bot.frontends.discord_commands import LocaleTranslator, build_tree
from bot.frontends.discord_routes import RoutedClient, Routes, use_webhook_routes
from bot.frontends.stream import StreamingSink

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


class DiscordSink(StreamingSink):
    """A StreamingSink that remembers the ids of the messages its reply ended up in, and sends
    files to its channel as attachments."""

    sent: tuple[str, ...] = ()
    channel: Any = None  # where send_file posts; set by the frontend

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
        sink = DiscordSink(self._send, self._edit, limit=self.limit, interval=self.interval)
        sink.channel = self.channel
        return sink


class DiscordFrontend:
    platform: ClassVar[str] = "discord"
    Options: ClassVar[type] = DiscordOptions
    token_env: ClassVar[str] = "DISCORD_TOKEN"

    def __init__(self, options: DiscordOptions, config: Any, token: str) -> None:
        _check_ids(options)
        self.options = options
        self.config = config
        self.token = token
        self.routes = Routes(options.api_base, options.gateway_url)
        self.client: RoutedClient | None = None
        self.router: Any = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._warned_empty = False

    # lifecycle

    async def start(self, router: Any) -> None:
        """Log in and sync the slash commands (a bad token fails here), then connect."""
        self.router = router
        self.client = RoutedClient(self.routes, intents=INTENTS, allowed_mentions=NO_MENTIONS)
        for handler in (self.on_ready, self.on_message,
                        self.on_raw_reaction_add, self.on_raw_reaction_remove):
            setattr(self.client, handler.__name__, handler)
        try:
            await self.client.login(self.token)
            await self._sync_commands(router)
        except BaseException as exc:
            await self.client.close()
            raise self._start_failure(exc) from None
        self._task = asyncio.create_task(self._connect(), name="discord")

    def _start_failure(self, exc: BaseException) -> BaseException:
        """What a failed start says: one line (the exit code 2 of a config error) for what the
        user can fix, the exception itself for anything else."""
        where = self.options.api_base
        if isinstance(exc, discord.LoginFailure):  # its message says little; ours hides the token
            return ConfigError(f"discord: {where} refused {self.token_env}; reset and copy the "
                               "bot's token (developer portal -> your application -> Bot)")
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

    async def on_message(self, message: discord.Message) -> None:
        if self._stopping or message.author.bot or message.author.id == self._user().id:
            return
        if not self._addressed(message):
            return
        text = self._text(message)
        if not text:
            self._warn_empty(message)
            return
        sink = self._message_sink(message)
        with logs.fields(chat=f"discord:{message.channel.id}"):
            async with _typing(message.channel):
                await self.router.handle(self._incoming(message, text), sink)
        if self.options.vote_hint and sink.sent and commands.parse(text) is None:
            await self._hint_votes(message.channel, sink.sent[-1])

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

    def _message_sink(self, message: discord.Message) -> DiscordSink:
        channel = message.channel
        if isinstance(channel, discord.GroupChannel):  # no bot is ever in a group DM
            raise TypeError("discord: a bot cannot answer in a group DM")
        reference: discord.MessageReference | None = message.to_reference(fail_if_not_exists=False)

        async def send(text: str) -> str:
            nonlocal reference  # only the first part answers the message; the rest follow it
            # discord.py takes None for no reference (abc.py: `if reference is not None`)
            sent = await channel.send(text, reference=reference,  # type: ignore[arg-type]
                                      allowed_mentions=NO_MENTIONS)
            reference = None
            return str(sent.id)

        async def edit(message_id: str, text: str) -> None:
            partial = channel.get_partial_message(int(message_id))
            await partial.edit(content=text, allowed_mentions=NO_MENTIONS)

        sink = DiscordSink(send, edit, limit=MESSAGE_LIMIT, interval=self.options.edit_interval)
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
        """Acknowledge at once (Discord allows 3 s), then answer by editing that response."""
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
        with logs.fields(chat=f"discord:{interaction.channel_id}"):
            await self.router.handle(incoming, self._interaction_sink(interaction))

    def _interaction_sink(self, interaction: discord.Interaction) -> DiscordSink:
        original = ""  # the id of the deferred response, once it shows text

        async def send(text: str) -> str:
            nonlocal original
            if not original:
                sent = await interaction.edit_original_response(
                    content=text, allowed_mentions=NO_MENTIONS,
                )
                original = str(sent.id)
                return original
            followed = await interaction.followup.send(text, wait=True,
                                                       allowed_mentions=NO_MENTIONS)
            return str(followed.id)

        async def edit(message_id: str, text: str) -> None:
            if message_id == original:
                await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
            else:
                await interaction.followup.edit_message(
                    int(message_id), content=text, allowed_mentions=NO_MENTIONS,
                )

        sink = DiscordSink(send, edit, limit=MESSAGE_LIMIT, interval=self.options.edit_interval)
        sink.channel = interaction.channel  # a file goes to the channel, beside the answer
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


@contextlib.asynccontextmanager
async def _typing(channel: Any) -> AsyncIterator[None]:
    """Show "typing…" while the engine thinks. The request runs beside the message, not before
    it: awaiting it first would let a later message of the channel take the chat's turn, and a
    channel that refuses it (or a network error) must not cost the reply."""
    task = asyncio.create_task(_keep_typing(channel))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _keep_typing(channel: Any) -> None:
    try:
        async with channel.typing():
            await asyncio.Event().wait()  # until cancelled
    except (discord.HTTPException, OSError, aiohttp.ClientError):
        log.debug("discord: no typing indicator in %s", channel, exc_info=True)
