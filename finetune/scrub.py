"""Personal data out of training text, before anything is written to disk.

Each kind is replaced by a placeholder that keeps the sentence readable (and teaches the model
the shape, not the value): an e-mail address becomes <email>, and so on. The rules run in
order, each on what the ones before left: secrets in URLs and assignments first (a URL with
user:password@host looks like an e-mail address, and a token may contain digits that look like
a phone number), then e-mail addresses, IBANs, phone numbers and @handles.

Two well-kept libraries decide what regular expressions cannot: python-stdnum checks an IBAN's
checksum (so "DE12 ..." that is not an account stays, and a lower-case or oddly spaced one is
still found), and phonenumbers (Google's libphonenumber) finds numbers that are valid in some
region, so dates, times, version numbers and ISBNs are never taken for phone numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import phonenumbers
from stdnum import iban

# A parameter or field whose value is a secret. Names that say so ("reset_token", "client_secret",
# "X-Amz-Signature", "jwt", "password"...: a name ending in one of them after "_" or "-") count
# with "=" or ":" and spaces around them, quoted or not ("password: x", {"token": "x"});
# words that are also ordinary English ("key", "code", "pass") only as name=value, URL style.
_VALUE = r"""(["']?)([^\s&#"'<>]+)\3"""
_PREFIX = r"(?:[\w-]*[_-])?"
_SECRET_NAMED = re.compile(
    rf"""(?i)(?<![\w-])(["']?{_PREFIX}(?:tokens?|secret|signature|password|passwort|passwd|pwd|"""
    rf"""api[_-]?key|access[_-]?key|jwt|credentials?)["']?)(\s*(?:=(?!=)|:)\s*){_VALUE}""")
_SECRET_PARAMETER = re.compile(
    rf"(?i)(?<![\w-])({_PREFIX}(?:key|code|pass|auth|session|sig))(=(?!=)){_VALUE}")
_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/@]+@[^\s]+")
# Webhook and bot URLs that carry their secret in the path.
_SECRET_PATH = re.compile(
    r"(?i)\bhttps?://(?:[\w-]+\.)*(?:discord(?:app)?\.com/api(?:/v\d+)?/webhooks|"
    r"hooks\.slack\.com/(?:services|workflows|triggers)|api\.telegram\.org/(?:file/)?bot"
    r"|outlook\.office\.com/webhook)[^\s]*")
_BOT_TOKEN = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}")  # Telegram's "123456:ABC..."
_JWT = re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
# Something shaped like an IBAN: a country code, two check digits, then letters and digits in
# any grouping (one or two spaces); the checksum decides how much of it is the IBAN.
_IBAN_SHAPE = re.compile(r"(?i)\b[a-z]{2}\d{2}(?:[ ]{0,2}[a-z0-9]){10,30}\b")
# A handle: @ and a name of letters (any script), digits, _ and inner dots or dashes.
_HANDLE = re.compile(r"(?<![\w@.])@\w(?:[\w]|[.-](?=\w))*")
PHONE_REGIONS = ("DE", "AT", "CH", "US", "GB", "FR")  # how local numbers without +code are read


def _secret_assignment(match: re.Match[str]) -> str:
    name, separator, quote = match[1], match[2], match[3]
    return f"{name}{separator}{quote}<secret>{quote}"


def _ibans(text: str) -> str:
    return _IBAN_SHAPE.sub(lambda m: _iban_in(m[0]), text)


def _iban_in(candidate: str) -> str:
    """The candidate with its longest valid IBAN prefix replaced; unchanged if none."""
    for end in range(len(candidate), 14, -1):
        if not candidate[end - 1].isalnum():
            continue
        if iban.is_valid(candidate[:end].replace(" ", "").upper()):
            return "<iban>" + candidate[end:]
    return candidate


def _phones(text: str) -> str:
    for region in PHONE_REGIONS:
        found = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
        for match in sorted(found, key=lambda m: m.start, reverse=True):
            text = text[:match.start] + "<phone>" + text[match.end:]
    return text


def _sub(pattern: re.Pattern[str], placeholder: str) -> Callable[[str], str]:
    return lambda text: pattern.sub(placeholder, text)


RULES: list[tuple[str, Callable[[str], str]]] = [
    ("url with credentials", _sub(_URL_CREDENTIALS, "<url>")),
    ("webhook or bot url", _sub(_SECRET_PATH, "<url>")),
    ("bot token", _sub(_BOT_TOKEN, "<secret>")),
    ("json web token", _sub(_JWT, "<secret>")),
    ("named secret", lambda text: _SECRET_NAMED.sub(_secret_assignment, text)),
    ("secret parameter", lambda text: _SECRET_PARAMETER.sub(_secret_assignment, text)),
    ("e-mail address", _sub(_EMAIL, "<email>")),
    ("iban", _ibans),
    ("phone number", _phones),
    ("handle", _sub(_HANDLE, "<user>")),
]


def scrub(text: str) -> str:
    """`text` with secrets, e-mail addresses, IBANs, phone numbers and @handles replaced by
    placeholders."""
    for _, rule in RULES:
        text = rule(text)
    return text
