"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests of the real PTB client.

It speaks the HTTP side of https://core.telegram.org/bots/api as far as the bot uses it: PTB
posts form fields to /bot<token>/<method> and gets {"ok": true, "result": ...} back, or
{"ok": false, "error_code": ..., "description": ...}. A test plays the people in the chats
(`say`, `react`, `press`), then reads what the bot did (`calls`, `sent`, `messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.harness import listen_on_loopback

# Form fields that PTB sends as plain strings; every other field is JSON-encoded.
_TEXT_FIELDS = {"text", "caption", "parse_mode", "action", "language_code", "callback_query_id",
                "url", "secret_token", "business_connection_id", "inline_message_id"}
# Without allowed_updates, Telegram sends every kind of update except these.
_OPT_IN_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}
_COMMAND = re.compile(r"^/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?")
_MENTION = re.compile(r"@[A-Za-z0-9_]{5,32}")
# Requests that put a message in a chat or change one: what Telegram's per-chat limits count.
MESSAGE_METHODS = {"sendMessage", "editMessageText", "sendDocument"}
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup of "
                "the message")


class ApiError(Exception):
    def __init__(self, code: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclass
class Call:
    method: str
    params: dict[str, Any]


@dataclass
class Person:
    id: int
    first_name: str
    is_bot: bool = False
    username: str = ""

    def json(self) -> dict[str, Any]:
        data = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        return data | ({"username": self.username} if self.username else {})


@dataclass
class Chat:
    id: int
    type: str  # "private" or "supergroup"
    title: str = ""
    admins: list[int] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type} | ({"title": self.title} if self.title else {})


class FakeTelegram:
    """`group_limit`: like Telegram, a group that gets more than this many messages (edits
    included) within `window` seconds is answered 429 for a while; a test scales the minute."""

    def __init__(self, token: str = "123456:TEST-TOKEN", username: str = "eliza2llm_bot",
                 group_limit: int | None = None, window: float = 60.0) -> None:
        self.token = token
        self.group_limit, self.window = group_limit, window
        self.arrivals: dict[int, list[float]] = {}  # chat id -> when its messages came
        self.floods = 0  # 429s for a group past group_limit
        self.me = Person(777, "eliza2llm", is_bot=True, username=username)
        self.calls: list[Call] = []
        self.uploads: list[tuple[int, str, bytes]] = []  # (chat id, file name, content)
        self.answered: dict[str, str] = {}  # callback query id -> the text it was answered with
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, message id) -> now
        self.commands: dict[str | None, list[dict[str, str]]] = {}  # language code -> menu
        self.dropped: list[dict[str, Any]] = []  # updates filtered out by allowed_updates
        self._chats: dict[int, Chat] = {}
        self._updates: list[dict[str, Any]] = []
        self._allowed: set[str] | None = None
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = {}
        self._failures: dict[str, list[ApiError]] = {}
        self._late: dict[str, list[float]] = {}
        self._hurry = asyncio.Event()  # set: late answers still pending go out now
        self._confirmed_below = 0
        self._news = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0
        # True: a request that arrives is lost on its way (its connection dropped, nothing
        # carried out), as if the network had eaten it.
        self.unreachable = False

    # lifecycle ----------------------------------------------------------------------------

    async def start(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._dispatch)
        self._runner, self.port = await listen_on_loopback(app)
        return self

    async def close(self) -> None:
        self._closing = True  # long polls in progress return now, not at their timeout
        self._hurry.set()  # and late answers too
        await self._notify()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # what a test does -----------------------------------------------------------------------

    def private(self, user: Person) -> Chat:
        return Chat(user.id, "private")

    def group(self, chat_id: int = -1001, title: str = "Course", admins: tuple = ()) -> Chat:
        return Chat(chat_id, "supergroup", title, list(admins))

    def say(self, chat: Chat, user: Person, text: str, reply_to: int | None = None) -> int:
        """A person writes in a chat; returns the new message's id."""
        message = self._message(chat, user, text)
        if reply_to is not None:
            message["reply_to_message"] = self.messages[(chat.id, reply_to)]
        self.messages[(chat.id, message["message_id"])] = message
        self._chats[chat.id] = chat
        self.push("message", message)
        return message["message_id"]

    def react(self, chat: Chat, user: Person, message_id: int, old: list[str], new: list[str]):
        self.push("message_reaction", {
            "chat": chat.json(), "message_id": message_id, "user": user.json(),
            "date": int(time.time()), "old_reaction": [_emoji(e) for e in old],
            "new_reaction": [_emoji(e) for e in new],
        })

    def press(self, chat: Chat, user: Person, message_id: int, data: str) -> str:
        """A person presses an inline button under one of the bot's messages."""
        query_id = f"q{next(self._update_ids)}"
        self.push("callback_query", {
            "id": query_id, "from": user.json(), "chat_instance": str(chat.id),
            "message": self.messages[(chat.id, message_id)], "data": data,
        })
        return query_id

    def push(self, kind: str, payload: dict[str, Any]) -> None:
        self._updates.append({"update_id": next(self._update_ids), kind: payload})
        asyncio.get_running_loop().create_task(self._notify())

    def fail_once(self, method: str, retry_after: int) -> None:
        """The next call of `method` is refused with 429 Too Many Requests."""
        error = ApiError(429, f"Too Many Requests: retry after {retry_after}",
                         retry_after=retry_after)
        self._failures.setdefault(method, []).append(error)

    def fail(self, method: str, times: int, code: int = 502,
             retry_after: float | None = None) -> None:
        """The next `times` calls of `method` are refused: 429 (with retry_after) or a 5xx."""
        description = "Too Many Requests" if code == 429 else "Bad Gateway"
        extra = {"retry_after": retry_after} if retry_after is not None else {}
        for _ in range(times):
            self._failures.setdefault(method, []).append(ApiError(code, description, **extra))

    def answer_late(self, method: str, seconds: float, times: int = 1) -> None:
        """The next `times` calls of `method` are carried out, then answered `seconds` late."""
        self._late.setdefault(method, []).extend([seconds] * times)

    def answer_on_time(self, method: str) -> None:
        """Calls of `method` are answered at once again, the late answers still owed now."""
        self._late.pop(method, None)
        self._hurry.set()
        self._hurry = asyncio.Event()

    @property
    def confirmed(self) -> int:
        """Updates with an id below this were confirmed: a getUpdates asked past them."""
        return self._confirmed_below

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [call.params for call in self.calls if call.method == method]

    def sent(self, chat: Chat) -> list[dict[str, Any]]:
        """The bot's messages in a chat as they look now, oldest first."""
        return [m for (c, _), m in sorted(self.messages.items())
                if c == chat.id and m["from"]["id"] == self.me.id]

    async def wait_for(self, predicate, what: str, timeout: float = 10.0) -> None:
        async def until() -> None:
            async with self._news:
                await self._news.wait_for(predicate)
        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; calls: "
                                 f"{[c.method for c in self.calls]}") from None

    # the HTTP side --------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        if self.unreachable:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)  # never reaches the client: its connection is gone
        if request.match_info["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        method = request.match_info["method"]
        params = _decode(await request.post())
        handler = getattr(self, f"api_{method}", None)
        if handler is None:
            return _error(ApiError(404, "Not Found"))
        self.calls.append(Call(method, params))
        await self._notify()
        try:
            if method in MESSAGE_METHODS:
                self._count(params["chat_id"])
            failures = self._failures.get(method)
            if failures:
                raise failures.pop(0)
            result = await handler(**params)
            if self._late.get(method):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self._late[method].pop(0))
        except ApiError as exc:
            return _error(exc)
        finally:
            await self._notify()
        return web.json_response({"ok": True, "result": result})

    def _count(self, chat_id: int) -> None:
        """Note a message request; past `group_limit` in a group, refuse it as Telegram does."""
        now = time.monotonic()
        arrivals = self.arrivals.setdefault(chat_id, [])
        arrivals.append(now)
        chat = self._chats.get(chat_id)
        if self.group_limit is None or chat is None or chat.type == "private":
            return
        if sum(1 for t in arrivals if t > now - self.window) > self.group_limit:
            self.floods += 1
            wait = max(1, round(self.window / self.group_limit))
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    def most_in_window(self, chat: Chat) -> int:
        """The most message requests to `chat` that arrived within any `window` seconds."""
        times, most, first = self.arrivals.get(chat.id, []), 0, 0
        for last, at in enumerate(times):
            while times[first] <= at - self.window:
                first += 1
            most = max(most, last - first + 1)
        return most

    async def _notify(self) -> None:
        async with self._news:
            self._news.notify_all()

    async def api_getMe(self) -> dict[str, Any]:
        return self.me.json() | {"can_join_groups": True, "can_read_all_group_messages": False,
                                 "supports_inline_queries": False}

    async def api_deleteWebhook(self, drop_pending_updates: bool = False) -> bool:
        if drop_pending_updates:
            self._updates.clear()
        return True

    async def api_getWebhookInfo(self) -> dict[str, Any]:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    async def api_getUpdates(self, offset: int = 0, limit: int = 100, timeout: float = 0,
                             allowed_updates: list[str] | None = None) -> list[dict]:
        if allowed_updates is not None:  # remembered until changed, as Telegram does
            self._allowed = set(allowed_updates)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self._confirmed_below = max(self._confirmed_below, offset)
        async with self._news:
            try:
                await asyncio.wait_for(
                    self._news.wait_for(lambda: self._closing or self._deliverable()), timeout)
            except TimeoutError:
                return []
        return self._deliverable()[:limit]

    def _deliverable(self) -> list[dict[str, Any]]:
        allowed = self._allowed or {"message", "edited_message", "callback_query"}
        for update in list(self._updates):
            if next(k for k in update if k != "update_id") not in allowed:
                self._updates.remove(update)
                self.dropped.append(update)
        return self._updates

    async def api_sendMessage(self, chat_id: int, text: str, reply_markup: Any = None,
                              **options: Any) -> dict[str, Any]:
        _check_text(text)
        chat = self._chats.get(chat_id) or Chat(chat_id, "private")
        message = self._message(chat, self.me, text, entities=False)
        if reply_markup:
            message["reply_markup"] = reply_markup
        self.messages[(chat_id, message["message_id"])] = message
        return message

    async def api_sendDocument(self, chat_id: int, document: Any, caption: str = "",
                               **options: Any) -> dict[str, Any]:
        chat = self._chats.get(chat_id) or Chat(chat_id, "private")
        message = self._message(chat, self.me, "", entities=False)
        del message["text"]
        content = document.file.read()
        size = len(content)
        self.uploads.append((chat_id, document.filename, content))
        message |= {"caption": caption, "document": {
            "file_id": f"doc{message['message_id']}", "file_unique_id": "u",
            "file_name": document.filename, "file_size": size}}
        self.messages[(chat_id, message["message_id"])] = message
        return message

    async def api_editMessageText(self, text: str, chat_id: int, message_id: int,
                                  reply_markup: Any = None, **options: Any) -> dict[str, Any]:
        _check_text(text)
        message = self.messages.get((chat_id, message_id))
        if message is None or message["from"]["id"] != self.me.id:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["text"] == text and message.get("reply_markup") == reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        message = {k: v for k, v in message.items() if k != "reply_markup"}
        message |= {"text": text, "edit_date": int(time.time())}
        if reply_markup:
            message["reply_markup"] = reply_markup
        self.messages[(chat_id, message_id)] = message
        return message

    async def api_sendChatAction(self, chat_id: int, action: str, **options: Any) -> bool:
        return True

    async def api_setMyCommands(self, commands: list[dict[str, str]], scope: Any = None,
                                language_code: str | None = None) -> bool:
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command["command"]):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"]) <= 256:
                raise ApiError(400, "Bad Request: command description is invalid")
        self.commands[language_code] = commands
        return True

    async def api_setMessageReaction(self, chat_id: int, message_id: int, **options: Any) -> bool:
        return True

    async def api_answerCallbackQuery(self, callback_query_id: str, **options: Any) -> bool:
        self.answered[callback_query_id] = options.get("text", "")
        return True

    async def api_getChatAdministrators(self, chat_id: int) -> list[dict[str, Any]]:
        chat = self._chats.get(chat_id)
        if chat is None or chat.type == "private":
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        return [_admin(Person(user_id, f"admin{user_id}"), owner=index == 0)
                for index, user_id in enumerate(chat.admins)]

    def _message(self, chat: Chat, sender: Person, text: str, entities: bool = True) -> dict:
        ids = self._message_ids.setdefault(chat.id, itertools.count(1))
        message = {"message_id": next(ids), "date": int(time.time()), "chat": chat.json(),
                   "from": sender.json(), "text": text}
        found = _entities(text) if entities else []
        return message | ({"entities": found} if found else {})


def _decode(form: Any) -> dict[str, Any]:
    params = {}
    for key, value in form.items():
        if key in _TEXT_FIELDS or not isinstance(value, str):  # not str: an uploaded file
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value  # e.g. chat_id "@channelname"
    return params


def _error(exc: ApiError) -> web.Response:
    body = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.code)


def _check_text(text: str) -> None:
    if not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if len(text) > 4096:
        raise ApiError(400, "Bad Request: message is too long")


def _entities(text: str) -> list[dict[str, Any]]:
    """Commands and @mentions, with offsets in UTF-16 code units as Telegram counts them."""
    found = []
    if command := _COMMAND.match(text):
        found.append(("bot_command", command.start(), command.end()))
    found += [("mention", m.start(), m.end()) for m in _MENTION.finditer(text)]
    return [{"type": kind, "offset": _utf16(text[:start]), "length": _utf16(text[start:end])}
            for kind, start, end in found]


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _emoji(emoji: str) -> dict[str, str]:
    return {"type": "emoji", "emoji": emoji}


def _admin(user: Person, owner: bool) -> dict[str, Any]:
    if owner:
        return {"status": "creator", "user": user.json(), "is_anonymous": False}
    rights = ("can_be_edited", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
              "can_restrict_members", "can_promote_members", "can_change_info",
              "can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories")
    return {"status": "administrator", "user": user.json(), "is_anonymous": False} | dict.fromkeys(
        rights, True)
