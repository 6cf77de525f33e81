"""One message in -> one reply out: per-chat lock, engine choice, history, logging.

A chat's messages are answered one at a time and in order; different chats run side by side.
Every reply is stored with the engine and version that made it; an engine that fails or hangs
is answered with a short apology, and the cause goes to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Iterator
from dataclasses import dataclass
from typing import cast

from bot import commands, learning, logs, metrics
from bot.access import admitted
from bot.budget import reply_cost
from bot.events import Incoming, Reaction, Sink, deliver
from bot.i18n import t
from bot.policy import (
    OutputCleaner,
    RateLimiter,
    clean_output,
    detail_for,
    is_bot_admin,
    may_use,
    rate_limited,
)
from bot.services import Services
from bot.store import Chat, Exchange, Recalled, User
from bot.turns import Turns
from engines.base import (
    BOT_WORDS,
    CUT,
    Conversation,
    Engine,
    EngineUnavailable,
    Written,
)

log = logging.getLogger(__name__)
CUT_SECONDS = 5.0  # at shutdown, how long a cut-off reply may take to be delivered and stored
MOVE_DEADLINE_AFTER = 0.001  # seconds a sink kept a reply waiting before its timeout moves
MARKS = ("error", BOT_WORDS, CUT)  # trace keys kept even for someone whose text is not stored


@dataclass(frozen=True)
class Outcome:
    """What became of one engine reply, for the store."""

    text: str
    version: str
    failed: bool = False


class Router:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = config = services.config
        self.store = services.store
        self.engines = services.engines
        self.limiter = RateLimiter(config.policy.rate_per_minute)
        self.turns = Turns(config.bot.max_backlog)  # each chat's turns, its backlog bounded
        self._refused = RateLimiter(0)  # when a refused person was last told so
        self._in_flight: set[asyncio.Task] = set()
        self.accepting = True
        self._votes = {_bare(e): 1 for e in config.feedback.up} | {
            _bare(e): -1 for e in config.feedback.down}
        self._unstored_state = services.unstored_state  # /forget drops from it too

    async def handle(self, incoming: Incoming, sink: Sink) -> None:
        """Answer one message or command through `sink`; never raises for a bad message."""
        if not self.accepting:  # shutting down: what is in flight finishes, nothing new starts
            return
        metrics.child(metrics.MESSAGES, incoming.platform).inc()
        if not admitted(incoming, self.config.access, self.config.bot):
            await self._refuse(incoming, sink)
            return
        with self._tracked():
            if _is_long_command(incoming.text):  # e.g. /retrain: the chat goes on meanwhile
                await self._handle(incoming, sink)
            else:
                await self._in_turn(incoming, sink)
            notices = self.services.notices
            if notices.pending:  # an admin writing is the next chance to tell them
                lang = await self.chat_lang(incoming.platform, incoming.chat_id)
                await notices.tell(incoming, sink, self.config.bot, lang)

    async def _in_turn(self, incoming: Incoming, sink: Sink) -> None:
        """In the chat's turn; a plain message (not a command) may be let go instead when
        the chat's backlog is full (bot/turns.py)."""
        may_let_go = commands.parse(incoming.text) is None
        async with self.turns.turn(_chat_key(incoming), may_let_go) as turn:
            if turn.let_go:
                metrics.child(metrics.LET_GO, incoming.platform).inc()
                await self.store_unanswered(incoming)  # in the chat's history
                return
            if turn.tell:
                await self._tell_let_go(incoming, sink, turn.tell)
            await self._handle(incoming, sink)

    async def _tell_let_go(self, incoming: Incoming, sink: Sink, count: int) -> None:
        """One line for the messages let go before this one, before its answer."""
        more = sink.another()
        if more is None:  # a sink with one message only: it is this answer's
            return
        lang = await self.chat_lang(incoming.platform, incoming.chat_id)
        await deliver(more, t(lang, "backlog_let_go", count=count))

    async def _refuse(self, incoming: Incoming, sink: Sink) -> None:
        """[access] refused: one line in a private chat (once a minute), nothing in a group,
        and nothing stored."""
        key = f"{incoming.platform}:{incoming.user_id}"
        if not incoming.is_group and self._refused.tell(key):
            lang = await self.chat_lang(incoming.platform, incoming.chat_id)
            await deliver(sink, t(lang, "access_refused"))

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Count the current task as work in flight, for `drain`."""
        task = asyncio.current_task()
        assert task is not None, "called from a task"
        self._in_flight.add(task)
        try:
            yield
        finally:
            self._in_flight.discard(task)

    async def _handle(self, incoming: Incoming, sink: Sink) -> None:
        chat = await self.store.chat(incoming.platform, incoming.chat_id, incoming.chat_title)
        user = await self.store.user(incoming.platform, incoming.user_id, incoming.user_name)
        lang = self.lang(chat)
        parsed = commands.parse(incoming.text)
        if rate_limited(incoming, self.config.bot, self.limiter):  # commands count too
            metrics.RATE_LIMITED.inc()
            if self.limiter.tell(f"{incoming.platform}:{incoming.user_id}"):
                await sink.finish(t(lang, "rate_limited", limit=self.limiter.per_minute))
        elif (refused := self._over_limits(incoming, parsed is None, lang)) is not None:
            await sink.finish(refused)  # before any engine work; nothing of it is stored
        elif parsed is not None:
            answer = await self._command(parsed, incoming, chat, user, sink)
            cmd = commands.COMMANDS.get(parsed[0])
            limit = None if cmd and cmd.whole else self.config.policy.max_reply_chars
            await sink.finish(clean_output(answer, limit))
        else:
            await self._answer(incoming, chat, user, sink)

    def _over_limits(self, incoming: Incoming, is_message: bool, lang: str) -> str | None:
        """The line that refuses a message or command longer than [policy] max_input_chars,
        or a message whose author's compute budget is spent (commands that ask an engine
        check their own cost); None when it may go on."""
        limit = self.config.policy.max_input_chars
        if len(incoming.text) > limit and not is_bot_admin(incoming, self.config.bot):
            return t(lang, "too_long", limit=limit)
        return self.services.budgets.refusal(incoming, lang) if is_message else None

    async def _command(
        self, parsed: tuple[str, str], incoming: Incoming, chat: Chat, user: User, sink: Sink
    ) -> str:
        name, args = parsed
        lang = self.lang(chat)
        cmd = commands.COMMANDS.get(name)
        if cmd is None:
            return t(lang, "unknown_command", name=name)
        if not may_use(cmd.scope, incoming, self.config.bot):
            key = "admin_only" if cmd.scope == "admin" else "chat_admin_only"
            return t(lang, key, name=name)
        if cmd.acts and incoming.redelivered:
            return self._not_replayed(name, user, lang)
        ctx = commands.CommandCall(self.services, incoming, chat, user, name, args, sink)
        try:
            return await cmd.run(ctx)
        except Exception:
            log.exception("command /%s failed", name)
            return t(lang, "apology")

    def _not_replayed(self, name: str, user: User, lang: str) -> str:
        """What became of a command that acts on the bot, delivered again after a restart: it
        is not run twice (a /retrain whose job brought the bot down would loop)."""
        jobs = self.services.jobs
        job = jobs.interrupted_job(user) if jobs is not None and name == "retrain" else None
        log.warning("/%s was delivered again after a restart: not run again%s", name,
                    f" (its job {job} was interrupted)" if job is not None else "")
        if job is not None:
            return t(lang, "replay_job_interrupted", job=job)
        return t(lang, "replay_not_run", name=name)

    async def _answer(self, incoming: Incoming, chat: Chat, user: User, sink: Sink) -> None:
        lang = self.lang(chat)
        keep = self.services.keeps_text(user)
        engine_name = self.engine_name(chat)
        recalled = await self.store.recall(chat, engine_name, self.config.bot.history_turns)
        asked = await self._stored_already(incoming, chat)
        if asked and await self.store.answered(asked):
            return  # answered, delivered and stored before a restart: not twice
        try:
            engine = await self.engines.get(engine_name)
        except EngineUnavailable as exc:
            metrics.REPLIES.labels(engine_name, "unavailable").inc()
            if asked is None:
                await self._store_asked(incoming, chat, user, keep)
            reason = detail_for(incoming, self.config.bot, lang, exc)
            await sink.finish(t(lang, "engine_unavailable", engine=engine_name, reason=reason))
            return
        conv = Conversation(
            chat_key=f"{incoming.platform}:{incoming.chat_id}", text=incoming.text, lang=lang,
            turns=recalled.turns, user_name=incoming.user_name,
            state=self._state(chat, engine_name, keep, recalled), adapter=chat.adapter,
        )
        started = time.monotonic()
        with logs.fields(engine=engine_name, version=engine.info().version):
            outcome = await self._generate(engine, conv, sink)
        metrics.replied(engine_name, outcome.failed, "cut_off" in conv.trace,
                        time.monotonic() - started)
        self.services.budgets.charge(incoming, reply_cost(conv.trace, incoming.text,
                                                          outcome.text))
        platform_ids = await deliver(sink, outcome.text)
        # Delivered: the person's message and the reply are stored now, in one transaction.
        await self.store.add_exchange(Exchange(
            chat, user, incoming.text if keep else None, outcome.text if keep else None,
            engine_name, outcome.version, recalled, asked_id=asked,
            platform_msg_id=incoming.message_id, platform_ids=platform_ids,
            trace=conv.trace if keep else {k: v for k, v in conv.trace.items() if k in MARKS},
            keep_state=keep))
        if not keep:
            self._unstored_state[chat.id, engine_name] = conv.state
        if keep and not outcome.failed:
            await learning.learn(self.engines, Written(
                incoming.text, lang, f"{incoming.platform}:{incoming.user_id}", conv.chat_key))

    async def _stored_already(self, incoming: Incoming, chat: Chat) -> int | None:
        """A message delivered again after a restart may have been stored before it."""
        if incoming.redelivered and incoming.message_id:
            return await self.store.message_for(chat, incoming.message_id)
        return None

    async def _ask(self, incoming: Incoming, chat: Chat, user: User, keep: bool) -> int:
        """Store the person's message, once: one delivered again after a restart is found."""
        found = await self._stored_already(incoming, chat)
        return found if found is not None else await self._store_asked(incoming, chat, user, keep)

    async def _store_asked(self, incoming: Incoming, chat: Chat, user: User, keep: bool) -> int:
        return await self.store.add_message(chat, user, "user", incoming.text if keep else None,
                                            platform_msg_id=incoming.message_id)

    # An engine's state and trace can hold the words it was told (ELIZA's memories, the
    # n-gram's keywords). For someone whose text must not be stored they live in memory only:
    # the conversation still flows, and nothing of it reaches the database. The stored state
    # (the store's cached object, which the engine changes in place) is not theirs to change:
    # they get a copy of it.
    def _state(self, chat: Chat, engine_name: str, keep: bool, recalled: Recalled) -> dict:
        if keep:
            self._unstored_state.pop((chat.id, engine_name), None)
            return recalled.state
        unstored = self._unstored_state.get((chat.id, engine_name))
        return unstored if unstored is not None else copy.deepcopy(recalled.state)

    async def _generate(self, engine: Engine, conv: Conversation, sink: Sink) -> Outcome:
        """Stream the engine's reply to the sink; an error or a timeout becomes an apology."""
        version = engine.info().version
        limit = self.config.policy.max_reply_chars
        text, started, cleaner = "", time.monotonic(), OutputCleaner(limit)
        try:
            async with asyncio.timeout(self.config.bot.reply_timeout) as deadline:
                # Engines' replies are async generators (engines/base.py), so they can be closed.
                replying = cast(AsyncGenerator[str, None], engine.reply(conv))
                async with contextlib.aclosing(replying) as deltas:
                    async for delta in deltas:
                        if not text:
                            metrics.child(metrics.FIRST_TOKEN_SECONDS, engine.name).observe(
                                time.monotonic() - started)
                        text += delta
                        shown = time.monotonic()
                        await _quietly(sink.update(cleaner.add(delta)))
                        # The timeout is the engine's: time the platform kept us waiting
                        # (a 429 waited out, say) is not held against it. (A wait too short
                        # to matter is not worth moving the timer for.)
                        waited = time.monotonic() - shown
                        when = deadline.when()
                        if waited > MOVE_DEADLINE_AFTER and when is not None:
                            deadline.reschedule(when + waited)
        except Exception as exc:  # TimeoutError included: an engine must not hang a chat
            log.error("engine %s failed in %s", engine.name, conv.chat_key, exc_info=True)
            conv.trace["error"] = f"{type(exc).__name__}: {exc}"
            conv.trace[BOT_WORDS] = "apology"
            return Outcome(t(conv.lang, "apology"), version, failed=True)
        except asyncio.CancelledError:
            if self.accepting:  # not a shutdown: whoever cancelled wants it gone
                raise
            # The bot is stopping: end the reply with what it has.
            cast(asyncio.Task, asyncio.current_task()).uncancel()
            log.warning("shutting down: cut off a reply in %s after %d characters",
                        conv.chat_key, len(text))
            conv.trace["cut_off"] = True
            conv.trace |= {CUT: "shutdown", BOT_WORDS: "cut_off"}
            cut = f"{text.rstrip()} {t(conv.lang, 'cut_off')}".strip()
            return Outcome(clean_output(cut, limit), conv.version or version, failed=True)
        if not text.strip():  # the engine had nothing to say
            conv.trace[BOT_WORDS] = "no_reply"
            return Outcome(clean_output(t(conv.lang, "no_reply"), limit), conv.version or version)
        cleaned = cleaner.add("")  # the text so far, cleaned
        if limit is not None and len(text) > limit and cleaned.endswith("…"):
            conv.trace[CUT] = "max_reply_chars"  # shortened here, after the engine ended it
        return Outcome(cleaned, conv.version or version)

    async def react(self, reaction: Reaction) -> bool:
        """A reaction on one of the bot's replies becomes (or stops being) a vote."""
        value = self.vote_value(reaction.emoji)
        if value is None:
            return False
        return await self.vote(reaction, value if reaction.added else None)

    def vote_value(self, emoji: str) -> int | None:
        """+1, -1, or None for a reaction that is no vote ([feedback] up and down)."""
        return self._votes.get(_bare(emoji))

    async def vote(self, reaction: Reaction, value: int | None) -> bool:
        """Set (value ±1) or remove (None) a user's vote on a reply; False if it is no reply.

        It waits for the chat's turn: a reply that is still streaming (its buttons already
        shown) is stored when it finishes, and votes keep the order they were cast in."""
        if not self.accepting or not admitted(reaction, self.config.access, self.config.bot):
            return False
        if rate_limited(reaction, self.config.bot, self.limiter):  # a vote storm is dropped
            metrics.RATE_LIMITED.inc()
            return False
        with self._tracked():
            async with self.turns.turn(f"{reaction.platform}:{reaction.chat_id}"):
                return await self._vote(reaction, value)

    async def _vote(self, reaction: Reaction, value: int | None) -> bool:
        chat = await self.store.find_chat(reaction.platform, reaction.chat_id)
        reply_id = await self.store.reply_for(chat, reaction.message_id) if chat else None
        if reply_id is None:
            return False
        user = await self.store.user(reaction.platform, reaction.user_id, reaction.user_name)
        if value is None:
            return await self.store.unvote(reply_id, user, source=reaction.emoji)
        await self.store.vote(reply_id, user, value, reaction.emoji)
        metrics.VOTES.labels("up" if value > 0 else "down").inc()
        return True

    async def greeting(self, platform: str, chat_id: str) -> str | None:
        """The chat engine's greeting, if it has one and is ready."""
        chat = await self.store.chat(platform, chat_id)
        try:
            engine = await self.engines.get(self.engine_name(chat))
        except EngineUnavailable:
            return None
        return engine.greeting(self.lang(chat))

    def lang(self, chat: Chat) -> str:
        return self.services.lang(chat)

    def engine_name(self, chat: Chat) -> str:
        return self.services.engine_name(chat)

    # the durable inbox, for frontends whose platform confirms deliveries (Telegram) ----------

    async def received(self, platform: str, key: str, payload: dict) -> bool:
        return await self.store.receive(platform, key, payload)

    async def unhandled(self, platform: str) -> list:
        return await self.store.unhandled(platform)

    async def replying(self, platform: str, key: str, reply_ids: list[str]) -> None:
        await self.store.replying(platform, key, reply_ids)

    async def handled(self, platform: str, key: str) -> None:
        await self.store.handled(platform, key)

    async def last_kept(self, platform: str) -> dict[str, int | None]:
        return await self.store.last_kept(platform)

    async def store_unanswered(self, incoming: Incoming) -> None:
        """Store a message without answering it (found too late, after a restart)."""
        if not admitted(incoming, self.config.access, self.config.bot):
            return  # nothing of a refused person is stored
        chat = await self.store.chat(incoming.platform, incoming.chat_id, incoming.chat_title)
        user = await self.store.user(incoming.platform, incoming.user_id, incoming.user_name)
        keep = self.services.keeps_text(user)
        await self._ask(incoming, chat, user, keep)

    async def chat_lang(self, platform: str, chat_id: str) -> str:
        """The language of a chat (the default for one never seen), for a frontend's words."""
        chat = await self.store.find_chat(platform, chat_id)
        return self.lang(chat) if chat else self.config.bot.language

    async def settle(self, timeout: float) -> set[asyncio.Task]:
        """Wait up to `timeout` seconds for the replies and votes in flight; returns those
        still running."""
        pending = {task for task in self._in_flight if task is not asyncio.current_task()}
        if not pending:
            return set()
        _, still = await asyncio.wait(pending, timeout=timeout)
        return still

    async def drain(self, timeout: float) -> None:
        """Take nothing new; let replies and votes in flight finish for up to `timeout` seconds;
        then a reply still streaming ends with its text so far and a "cut off" mark, and is
        delivered and stored as such (up to CUT_SECONDS more). The frontends stay connected
        meanwhile, so replies are delivered."""
        self.accepting = False
        still = await self.settle(timeout)
        for task in still:
            task.cancel()
        if still:
            _, still = await asyncio.wait(still, timeout=CUT_SECONDS)
        for task in still:  # stuck in delivery or the store: abandoned
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)


def _chat_key(incoming: Incoming) -> str:
    return f"{incoming.platform}:{incoming.chat_id}"


def _bare(emoji: str) -> str:
    return emoji.replace("\ufe0f", "")  # "❤️" and "❤" are the same reaction


def _is_long_command(text: str) -> bool:
    parsed = commands.parse(text)
    cmd = commands.COMMANDS.get(parsed[0]) if parsed else None
    return cmd is not None and cmd.long


async def _quietly(update: Awaitable[None]) -> None:
    """One interim write of a streamed reply. A failed one is logged: the final write still
    comes. One in flight when the drain cuts the reply ends whole, and the cut follows: a
    request cancelled halfway can leave the platform library wrong (discord.py 2.7's rate-limit
    bucket, http.py Ratelimit.__aexit__ cancelled in its refresh, holds the route's next
    request for 30 s: the cut-off edit of this very reply would not come)."""
    write = asyncio.ensure_future(update)
    write.add_done_callback(_log_failed_update)  # however it ends, abandoned included
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        await asyncio.wait([write])  # a second cancel (the drain giving up) abandons it
        raise
    except Exception:
        pass  # logged as it failed


def _log_failed_update(write: asyncio.Future) -> None:
    if not write.cancelled() and write.exception() is not None:
        log.warning("could not update a streamed reply", exc_info=write.exception())
