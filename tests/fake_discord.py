"""A fake Discord on 127.0.0.1 for end-to-end tests of the real discord.py client.

It speaks enough of REST v10 and of the gateway websocket for one bot in one server: login,
slash-command sync, messages (create, edit, typing, reactions), interactions (callback, edits of
the original response, followups), and the gateway handshake (HELLO, IDENTIFY, READY,
GUILD_CREATE, heartbeats). Tests push events with `message`, `react` and `slash`; the fake
records what the bot sent in `messages` (with every text each message showed) and `requests`,
and can answer the next matching request with a 429. Every message (the bot's and people's) is
in its channel's history, read with GET /channels/ID/messages (before, after, limit) as a bot
does after a restart; `message(..., deliver=False)` is one written while the bot is away.
Ids are snowflakes of the time they are made (or of `at`), as on Discord.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.harness import listen_on_loopback

APP_ID = "1000"
BOT_ID = "1001"
GUILD_ID = "2000"
CHANNEL_ID = "3000"  # "#general"
BOT_CHANNEL_ID = "3001"  # "#talk-to-the-bot", listed in [discord] channels by the tests
ADMIN_ROLE_ID = "2001"
MANAGE_GUILD = 1 << 5
TIMESTAMP = "2026-01-01T00:00:00+00:00"
DISCORD_EPOCH_MS = 1420070400000

BODY = web.RequestKey("body", object)
HELLO, HEARTBEAT, IDENTIFY, HEARTBEAT_ACK, DISPATCH = 10, 1, 2, 11, 0


def user(user_id: str, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": user_id, "username": name, "global_name": name, "discriminator": "0",
            "avatar": None, "bot": bot}


BOT_USER = user(BOT_ID, "eliza2llm", bot=True)


@dataclass
class SentMessage:
    """A message the bot sent, with every text it has shown (first send, then each edit)."""

    id: str
    channel_id: str
    texts: list[str]
    allowed_mentions: list[Any]  # the allowed_mentions of each write
    reference: str = ""  # the message it answers
    via: str = "channel"  # "channel", "interaction" (the original response) or "followup"
    reactions: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)  # attachments: filename, size

    @property
    def text(self) -> str:
        return self.texts[-1]


class FakeDiscord:
    def __init__(self) -> None:
        self.messages: dict[str, SentMessage] = {}
        self.requests: list[tuple[str, str, Any]] = []  # method, path, JSON body
        self.commands: dict[str, list[dict]] = {}  # "global" or guild id -> synced commands
        self.callbacks: list[dict] = []  # interaction callbacks (defer and friends)
        self.typing: list[str] = []
        self.identify: dict[str, Any] = {}
        self.guild_sent = False
        self.refuse_intents = False  # close like Discord does for an intent not enabled (4014)
        self._originals: dict[str, str] = {}  # interaction token -> id of its original response
        self._dm_channels: dict[str, dict[str, Any]] = {}  # channel id -> the person
        self._tasks: set[asyncio.Task] = set()
        self._rate_limits: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self._posted: dict[str, dict[str, Any]] = {}  # people's messages by id: the history
        self._seq = 0
        self._ws: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # server lifecycle

    async def start(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner, self.port = await listen_on_loopback(app)
        return self

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # what tests use

    def rate_limit_next(self, method: str, path_part: str) -> None:
        """Answer the next `method` request whose path contains `path_part` with a 429."""
        self._rate_limits.append((method, path_part))

    async def until(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `check()` is truthy and return it."""
        deadline = time.monotonic() + timeout
        while not (result := check()):
            if time.monotonic() > deadline:
                raise AssertionError(f"fake discord: gave up waiting ({timeout} s)")
            await asyncio.sleep(0.01)
        return result

    def replies_to(self, message_id: str) -> list[SentMessage]:
        return [m for m in self.messages.values() if m.reference == message_id]

    def in_channel(self, channel_id: str) -> list[SentMessage]:
        return [m for m in self.messages.values() if m.channel_id == channel_id]

    def new_id(self, at: float | None = None) -> str:
        """A snowflake: the time (`at`, else now) in its high bits, a counter in the low."""
        ms = int((time.time() if at is None else at) * 1000) - DISCORD_EPOCH_MS
        return str((ms << 22) | (next(self._ids) & 0x3FFFFF))

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed and self.guild_sent

    async def message(
        self, text: str, *, author: dict[str, Any], channel_id: str = CHANNEL_ID,
        in_guild: bool = True, mentions: list[dict] = (), admin: bool = False,
        reply_to: SentMessage | None = None, at: float | None = None, deliver: bool = True,
    ) -> str:
        """Someone writes `text` (at time `at`, else now); returns the new message's id. It
        goes into the channel's history, and to the bot if `deliver` (not while it is away)."""
        payload = {
            "id": self.new_id(at), "channel_id": channel_id, "author": author, "content": text,
            "timestamp": TIMESTAMP, "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": list(mentions), "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": False, "type": 0,
        }
        if in_guild:
            payload |= {"guild_id": GUILD_ID, "member": _member(admin)}
        else:
            self._dm_channels[channel_id] = author
        if reply_to is not None:
            payload["type"] = 19
            payload["message_reference"] = {"message_id": reply_to.id, "channel_id": channel_id}
            payload["referenced_message"] = self._payload(reply_to)
        self._posted[payload["id"]] = payload
        if deliver:
            await self.dispatch("MESSAGE_CREATE", payload)
        return payload["id"]

    def history(self, channel_id: str) -> list[dict[str, Any]]:
        """Every message in the channel, oldest first."""
        mine = [self._payload(m) for m in self.messages.values() if m.channel_id == channel_id]
        theirs = [p for p in self._posted.values() if p["channel_id"] == channel_id]
        return sorted(mine + theirs, key=lambda p: int(p["id"]))

    async def react(self, message_id: str, emoji: str, *, user_id: str, added: bool = True,
                    admin: bool = False) -> None:
        sent = self.messages[message_id]
        payload = {"user_id": user_id, "channel_id": sent.channel_id, "message_id": message_id,
                   "guild_id": GUILD_ID, "emoji": {"id": None, "name": emoji}, "burst": False,
                   "type": 0}
        if added:
            payload |= {"member": _member(admin) | {"user": user(user_id, "someone")},
                        "message_author_id": BOT_ID}
        await self.dispatch("MESSAGE_REACTION_ADD" if added else "MESSAGE_REACTION_REMOVE",
                            payload)

    async def slash(
        self, name: str, /, *, author: dict[str, Any], admin: bool = False,
        at: float | None = None, **options: str,
    ) -> str:
        """Someone runs /name with `options` (at time `at`: the interaction's id tells when);
        returns the interaction token."""
        token = f"token-{self.new_id()}"
        permissions = str(MANAGE_GUILD if admin else 0)
        payload = {
            "id": self.new_id(at), "application_id": APP_ID, "type": 2, "token": token,
            "version": 1, "guild_id": GUILD_ID, "channel_id": CHANNEL_ID,
            "channel": _channel(CHANNEL_ID), "locale": "en-US", "guild_locale": "en-US",
            "app_permissions": "0", "entitlements": [], "context": 0,
            "attachment_size_limit": 10 << 20,
            "authorizing_integration_owners": {"0": GUILD_ID},
            "member": _member(admin) | {"user": author, "permissions": permissions},
            "data": {"id": self.new_id(), "name": name, "type": 1, "options": [
                {"name": key, "type": 3, "value": value} for key, value in options.items()
            ]},
        }
        await self.dispatch("INTERACTION_CREATE", payload)
        return token

    def answer(self, token: str) -> SentMessage | None:
        """The original response of the interaction with this token, once it shows text."""
        return self.messages.get(self._originals.get(token, ""))

    # gateway

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        await self.until(lambda: self.guild_sent)
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": DISPATCH, "t": event, "s": self._seq, "d": data}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_json({"op": HELLO, "d": {"heartbeat_interval": 41250}})
        try:
            await self._serve_gateway(ws)
        finally:
            if self._ws is ws:  # the bot went away: events wait for it to come back
                self._ws, self.guild_sent = None, False
        return ws

    async def _serve_gateway(self, ws: web.WebSocketResponse) -> None:
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message["op"] == HEARTBEAT:
                await ws.send_json({"op": HEARTBEAT_ACK})
            elif message["op"] == IDENTIFY and self.refuse_intents:
                await ws.close(code=4014, message=b"Disallowed intent(s).")
            elif message["op"] == IDENTIFY:
                self.identify = message["d"]
                await self._ready(ws)

    async def _ready(self, ws: web.WebSocketResponse) -> None:
        self._seq = 2
        ready = {"v": 10, "user": BOT_USER, "session_id": "fake-session",
                 "resume_gateway_url": self.gateway_url, "guilds": [{"id": GUILD_ID,
                 "unavailable": True}], "application": {"id": APP_ID, "flags": 0}}
        await ws.send_json({"op": DISPATCH, "t": "READY", "s": 1, "d": ready})
        await ws.send_json({"op": DISPATCH, "t": "GUILD_CREATE", "s": 2, "d": _guild()})
        self.guild_sent = True

    # REST

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await _body(request) if request.can_read_body else None
        self.requests.append((request.method, request.path, body))
        for limit in self._rate_limits:
            if limit[0] == request.method and limit[1] in request.path:
                self._rate_limits.remove(limit)
                return _json(
                    {"message": "You are being rate limited.", "retry_after": 0.05,
                     "global": False}, status=429,
                    headers={"Via": "1.1 google", "X-RateLimit-Remaining": "0",
                             "X-RateLimit-Reset-After": "0.05", "X-RateLimit-Bucket": "fake"},
                )
        request[BODY] = body
        return await handler(request)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        parts = request.match_info["path"].split("/")
        for pattern, method, handler in self._endpoints():
            if method == request.method and _matches(pattern, parts):
                return await handler(request, parts, request[BODY])
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _endpoints(self) -> list[tuple[str, str, Any]]:
        return [
            ("users/@me", "GET", self._me),
            ("oauth2/applications/@me", "GET", self._application),
            ("gateway/bot", "GET", self._gateway_bot),
            ("applications/*/commands", "PUT", self._sync),
            ("applications/*/guilds/*/commands", "PUT", self._sync),
            ("channels/*/messages", "POST", self._create),
            ("channels/*", "GET", self._read_channel),
            ("channels/*/messages", "GET", self._read_history),
            ("channels/*/messages/*", "GET", self._read_message),
            ("channels/*/messages/*", "PATCH", self._edit),
            ("channels/*/typing", "POST", self._typing),
            ("channels/*/messages/*/reactions/*/@me", "PUT", self._add_reaction),
            ("interactions/*/*/callback", "POST", self._callback),
            ("webhooks/*/*/messages/@original", "PATCH", self._edit_original),
            ("webhooks/*/*", "POST", self._followup),
            ("webhooks/*/*/messages/*", "PATCH", self._edit_followup),
        ]

    async def _me(self, request, parts, body) -> web.Response:
        return _json(BOT_USER)

    async def _application(self, request, parts, body) -> web.Response:
        return _json({
            "id": APP_ID, "name": "eliza2llm", "icon": None, "description": "",
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64,
            "owner": user("1002", "owner"), "flags": 0, "interactions_endpoint_url": None,
        })

    async def _gateway_bot(self, request, parts, body) -> web.Response:
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})

    async def _sync(self, request, parts, body) -> web.Response:
        scope = parts[3] if parts[2] == "guilds" else "global"
        self.commands[scope] = body
        return _json([
            command | {"id": self.new_id(), "application_id": APP_ID, "version": "1"}
            for command in body
        ])

    async def _create(self, request, parts, body) -> web.Response:
        reference = (body.get("message_reference") or {}).get("message_id", "")
        sent = self._store(parts[1], body, reference=str(reference))
        payload = self._payload(sent)
        # Discord tells the bot about its own messages too.
        task = asyncio.get_running_loop().create_task(self.dispatch("MESSAGE_CREATE", payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _json(payload)

    async def _read_channel(self, request, parts, body) -> web.Response:
        if parts[1] in self._dm_channels:
            return _json({"id": parts[1], "type": 1, "last_message_id": None,
                          "recipients": [self._dm_channels[parts[1]]]})
        return _json(_channel(parts[1]))

    async def _read_history(self, request, parts, body) -> web.Response:
        """Discord's order: newest first; `after` gives the oldest `limit` after it."""
        found = self.history(parts[1])
        query = request.query
        if "before" in query:
            found = [p for p in found if int(p["id"]) < int(query["before"])]
        if "after" in query:
            found = [p for p in found if int(p["id"]) > int(query["after"])]
        limit = int(query.get("limit", 50))
        found = found[:limit] if "after" in query and "before" not in query else found[-limit:]
        return _json(list(reversed(found)))

    async def _read_message(self, request, parts, body) -> web.Response:
        found = [p for p in self.history(parts[1]) if p["id"] == parts[3]]
        if not found:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return _json(found[0])

    async def _edit(self, request, parts, body) -> web.Response:
        return self._update(parts[3], body)

    async def _typing(self, request, parts, body) -> web.Response:
        self.typing.append(parts[1])
        return web.Response(status=204)

    async def _add_reaction(self, request, parts, body) -> web.Response:
        self.messages[parts[3]].reactions.append(parts[5])
        return web.Response(status=204)

    async def _callback(self, request, parts, body) -> web.Response:
        self.callbacks.append({"interaction": parts[1], "token": parts[2], **body})
        return _json({"interaction": {
            "id": parts[1], "type": 2, "response_message_loading": body["type"] == 5}})

    async def _edit_original(self, request, parts, body) -> web.Response:
        if parts[2] not in self._originals:
            sent = self._store(CHANNEL_ID, body, via="interaction")
            self._originals[parts[2]] = sent.id
            return _json(self._payload(sent))
        return self._update(self._originals[parts[2]], body)

    async def _followup(self, request, parts, body) -> web.Response:
        sent = self._store(CHANNEL_ID, body, via="followup")
        return _json(self._payload(sent))

    async def _edit_followup(self, request, parts, body) -> web.Response:
        return self._update(parts[4], body)

    def _store(self, channel_id: str, body: dict, **details: str) -> SentMessage:
        sent = SentMessage(self.new_id(), channel_id, [body["content"]],
                           [body.get("allowed_mentions")], files=body.get("files", []),
                           **details)
        self.messages[sent.id] = sent
        return sent

    def _update(self, message_id: str, body: dict) -> web.Response:
        sent = self.messages[message_id]
        sent.texts.append(body["content"])
        sent.allowed_mentions.append(body.get("allowed_mentions"))
        return _json(self._payload(sent))

    def _payload(self, sent: SentMessage) -> dict[str, Any]:
        payload = {
            "id": sent.id, "channel_id": sent.channel_id, "author": BOT_USER,
            "content": sent.text, "timestamp": TIMESTAMP, "edited_timestamp": None,
            "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": False, "type": 0,
        }
        if sent.channel_id not in self._dm_channels:
            payload["guild_id"] = GUILD_ID
        if sent.reference:
            payload["message_reference"] = {"message_id": sent.reference,
                                            "channel_id": sent.channel_id}
        return payload


async def _body(request: web.Request) -> Any:
    """JSON, or multipart (a message with files): payload_json, plus the files as
    body["files"] = [{"filename", "size"}]."""
    if not request.content_type.startswith("multipart/"):
        return await request.json()
    body: dict[str, Any] = {}
    files = []
    reader = await request.multipart()
    async for part in reader:
        data = await part.read()
        if part.name == "payload_json":
            body = json.loads(data)
        else:
            files.append({"filename": part.filename, "size": len(data)})
    return body | {"files": files}


def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    # discord.py reads a body as JSON only under exactly "application/json" (no charset).
    return web.Response(body=json.dumps(data).encode(), status=status, headers=headers,
                        content_type="application/json")


def _matches(pattern: str, parts: list[str]) -> bool:
    wanted = pattern.split("/")
    return len(wanted) == len(parts) and all(
        w in ("*", p) for w, p in zip(wanted, parts, strict=True)
    )


def _member(admin: bool) -> dict[str, Any]:
    return {"roles": [ADMIN_ROLE_ID] if admin else [], "joined_at": TIMESTAMP, "deaf": False,
            "mute": False, "flags": 0}


def _channel(channel_id: str, name: str = "general") -> dict[str, Any]:
    return {"id": channel_id, "type": 0, "name": name, "position": 0,
            "guild_id": GUILD_ID, "permission_overwrites": [], "nsfw": False}


def _role(role_id: str, name: str, permissions: int) -> dict[str, Any]:
    return {"id": role_id, "name": name, "permissions": str(permissions), "position": 0,
            "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}


def _guild() -> dict[str, Any]:
    return {
        "id": GUILD_ID, "name": "Test server", "owner_id": "1002", "unavailable": False,
        "roles": [_role(GUILD_ID, "@everyone", 0), _role(ADMIN_ROLE_ID, "mods", MANAGE_GUILD)],
        "channels": [_channel(CHANNEL_ID, "general"), _channel(BOT_CHANNEL_ID, "talk")],
        "members": [_member(False) | {"user": BOT_USER}],
        "member_count": 3, "emojis": [], "stickers": [], "features": [], "threads": [],
        "joined_at": TIMESTAMP, "large": False, "preferred_locale": "en-US",
    }
