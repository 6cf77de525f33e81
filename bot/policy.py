"""Who may do what (admins), how often (rate limits), and what may be sent (output safety)."""

from __future__ import annotations

import re
import time
import unicodedata
from collections import deque

from bot.config import BotOptions
from bot.events import Incoming, Reaction
from bot.i18n import t

ZERO_WIDTH_SPACE = "\u200b"
# Replies never ping: Telegram turns any "@username" in plain text into a mention, and "@everyone"
# works wherever text is parsed for it; a zero-width space after the "@" keeps the word readable
# and harmless. Frontends also disable mentions in their API calls.
# Not after a word (an e-mail address, "doctor.en@947bea7e"), not Discord's <@id>: its API call
# pings no one, and the id shows as the member's name.
_MENTION = re.compile(r"(?<![\w<])@(?=\w)")
# Characters that are not what they look like: bidi overrides and isolates (which reorder what
# follows them), zero-width characters and other invisible formatting ("Cf"), controls ("Cc")
# and lone surrogates ("Cs"). Line breaks and tabs stay.
_HIDDEN = ("Cc", "Cf", "Cs")
# scheme://user:password@host: what /engines and /why show of a URL stops before the "@" part.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@")


def is_bot_admin(incoming: Incoming | Reaction, bot: BotOptions) -> bool:
    """Admins of the whole bot: listed in [bot] admins, or the local console's operator."""
    return incoming.platform == "console" or f"{incoming.platform}:{incoming.user_id}" in bot.admins


def detail_for(incoming: Incoming, bot: BotOptions, lang: str, detail: object) -> str:
    """An error's details (file paths, exceptions) for the bot's admins; others are told that
    there are some."""
    return str(detail) if is_bot_admin(incoming, bot) else t(lang, "details_for_admins")


def without_url_credentials(text: str) -> str:
    """`text` with every URL's `user:password@` left out (a server URL in /engines, or in an
    old reply's trace shown by /why, is for everyone to read; its credentials are not)."""
    return _URL_USERINFO.sub(r"\1", text)


def rate_limited(incoming: Incoming | Reaction, bot: BotOptions, limiter: RateLimiter) -> bool:
    """Whether this message is over its author's limit. Bot admins (the console's operator
    among them) are never limited: the limit keeps strangers from flooding a shared chat, and
    an admin's scripted session or piped console run must get every answer."""
    if is_bot_admin(incoming, bot):
        return False
    return not limiter.allow(f"{incoming.platform}:{incoming.user_id}")


def may_use(scope: str, incoming: Incoming, bot: BotOptions) -> bool:
    """scope: "anyone", "chat_admin" (in groups: chat admins only) or "admin" (bot admins)."""
    if scope == "admin":
        return is_bot_admin(incoming, bot)
    if scope == "chat_admin" and incoming.is_group:
        return incoming.is_admin or is_bot_admin(incoming, bot)
    return True


def clean_output(text: str, limit: int | None) -> str:
    """What the bot may send: no hidden characters, no mentions, not too long."""
    return OutputCleaner(limit).add(text)


class OutputCleaner:
    """clean_output of a reply that grows delta by delta: `add` returns the whole text so far,
    cleaned, and looks at each new character once (cleaning the whole text on every delta
    made a long streamed reply quadratic)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._visible = ""  # the text so far without its hidden characters
        self._last = ""  # the last character received, hidden or not (see _visible)
        self._settled = ""  # _visible[:_done] with its mentions neutralised
        self._done = 0

    def add(self, delta: str) -> str:
        if delta.isprintable():  # no Cc, Cf or Cs in it: nothing to drop (the common case)
            kept = delta
        else:
            kept = "".join(ch for i, ch in enumerate(delta)
                           if _visible(ch, delta[i - 1] if i else self._last))
        if delta:
            self._last = delta[-1]
        if kept:
            self._visible += kept
            self._neutralise_mentions()
        text = self._settled + self._visible[self._done:]
        limit = self.limit
        return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"

    def _neutralise_mentions(self) -> None:
        """Settle what the mention rule can decide: an "@" at the very end waits for the
        character after it; the rule looks one character back (finditer's `pos` lets it)."""
        visible, start = self._visible, self._done
        end = len(visible) - 1 if visible.endswith("@") else len(visible)
        pieces, at = [self._settled], start
        for match in _MENTION.finditer(visible, start):  # none at the end: it has no next
            pieces += [visible[at:match.end()], ZERO_WIDTH_SPACE]
            at = match.end()
        pieces.append(visible[at:end])
        self._settled, self._done = "".join(pieces), end


def _visible(ch: str, before: str) -> bool:
    if ch in "\n\t" or unicodedata.category(ch) not in _HIDDEN:
        return True
    # 👩‍💻: one emoji, kept. (A joiner with nothing before it is dropped; it used to raise.)
    return ch == "\u200d" and before != "" and unicodedata.category(before) == "So"


class RateLimiter:
    """At most `per_minute` events per key in any sliding minute (0 switches it off)."""

    MAX_KEYS = 10_000  # past this many people, those quiet for a minute are forgotten

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._told: dict[str, float] = {}  # key -> when it was last told to slow down

    def allow(self, key: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = self._clock()
        if len(self._events) > self.MAX_KEYS:
            self._forget_quiet(now)
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - 60:
            events.popleft()
        if len(events) >= self.per_minute:
            return False
        events.append(now)
        return True

    def tell(self, key: str) -> bool:
        """Whether to say "slow down" to a refused key: once per minute, not per message (a
        flood answered message by message would run into the platform's own limits)."""
        now = self._clock()
        if now - self._told.get(key, float("-inf")) < 60:
            return False
        self._told[key] = now
        return True


    def _forget_quiet(self, now: float) -> None:
        self._events = {k: q for k, q in self._events.items() if q and q[-1] > now - 60}
        self._told = {k: at for k, at in self._told.items() if at > now - 60}
