"""The bot's words exist in both languages; the output policy and the rate limit."""

from __future__ import annotations

import string

import pytest

from bot.commands import COMMANDS, describe, parse
from bot.config import BotOptions
from bot.events import Incoming
from bot.i18n import catalog, t
from bot.policy import ZERO_WIDTH_SPACE, RateLimiter, clean_output, is_bot_admin, may_use


def keys(node: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in node.items():
        out |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value}
    return out


def test_english_and_german_have_the_same_keys_and_placeholders():
    en, de = keys(catalog("en")), keys(catalog("de"))
    assert en.keys() == de.keys()
    fields = string.Formatter()
    for key in en:
        assert {f for _, f, _, _ in fields.parse(en[key]) if f} == {
            f for _, f, _, _ in fields.parse(de[key]) if f}, key


def test_a_key_missing_in_german_falls_back_to_english(monkeypatch, caplog):
    german = {key: value for key, value in catalog("de").items() if key != "reset_done"}
    monkeypatch.setattr("bot.i18n.catalog", lambda lang: german if lang == "de" else
                        catalog.__wrapped__("en"))
    assert t("de", "reset_done") == catalog("en")["reset_done"]
    assert t("de", "engine_set", engine="eliza") == catalog("de")["engine_set"].format(
        engine="eliza")
    assert "reset_done" in caplog.text
    with pytest.raises(KeyError):
        t("en", "no_such_text")


def test_every_command_has_a_description_in_both_languages():
    for name in COMMANDS:
        assert describe(name, "en") and describe(name, "de") != describe(name, "en"), name


def test_commands_are_parsed_from_text():
    assert parse("/engine eliza") == ("engine", "eliza")
    assert parse("/NEXT KI für alle") == ("next", "KI für alle")
    assert parse("/why\nplease") == ("why", "please")
    assert parse("/") is None and parse("/ x") is None and parse("hello /engine") is None


def test_mass_mentions_and_control_characters_are_neutralised():
    text = clean_output("hi @everyone @Here\x07 and \x1b[31mred", 100)
    assert "@everyone" not in text and "@Here" not in text
    assert "\x07" not in text and "\x1b" not in text
    assert clean_output("x" * 50, 10) == "x" * 9 + "…"


@pytest.mark.parametrize("hidden", ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u2060"])
def test_bidi_and_zero_width_characters_never_reach_a_chat(hidden):
    assert clean_output(f"pay{hidden}lcx.exe", 100) == "paylcx.exe"


def test_emoji_joined_by_zero_width_joiners_stay_one_emoji():
    assert clean_output("hi 👩\u200d💻", 100) == "hi 👩\u200d💻"


def test_no_handle_in_a_reply_pings_anyone():
    text = clean_output("ask @alice_user or @jörg, mail a@b.de", 100)
    assert "@alice_user" not in text and "@jörg" not in text
    assert text.replace(ZERO_WIDTH_SPACE, "") == "ask @alice_user or @jörg, mail a@b.de"
    assert "a@b.de" in text and clean_output("doctor.en@947bea7e", 100) == "doctor.en@947bea7e"


def test_rate_limiter_is_a_sliding_minute_per_key():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.allow("a") and limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")
    now[0] = 60.5
    assert limiter.allow("a")
    assert RateLimiter(0).allow("a")


def test_rate_limiter_forgets_people_who_went_quiet():
    now = [0.0]
    limiter = RateLimiter(1, clock=lambda: now[0])
    limiter.MAX_KEYS = 3
    for key in "abcd":
        limiter.allow(key)
    now[0] = 61.0
    assert limiter.allow("e")
    assert set(limiter._events) == {"e"}


def test_admins_and_scopes():
    bot = BotOptions(admins=["telegram:7"])
    boss = Incoming("telegram", "g", "7", "/x", is_group=True)
    member = Incoming("telegram", "g", "8", "/x", is_group=True)
    chat_admin = Incoming("telegram", "g", "9", "/x", is_group=True, is_admin=True)
    assert is_bot_admin(boss, bot) and not is_bot_admin(chat_admin, bot)
    assert may_use("admin", boss, bot) and not may_use("admin", chat_admin, bot)
    assert may_use("chat_admin", chat_admin, bot) and not may_use("chat_admin", member, bot)
    assert may_use("chat_admin", Incoming("telegram", "p", "8", "/x"), bot)  # a private chat
    assert is_bot_admin(Incoming("console", "console", "me", "/x"), bot)
