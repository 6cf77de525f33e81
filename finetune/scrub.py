"""Personal data out of training text, before anything is written to disk.

Each kind is replaced by a placeholder that keeps the sentence readable (and teaches the model
the shape, not the value): an e-mail address becomes <email>, and so on. Order matters: URLs
go before e-mail addresses (user:password@host looks like one) and before @handles.
"""

from __future__ import annotations

import re

# URLs that carry a secret: credentials before the host, or a token-like query parameter.
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/@]+@[^\s]+", re.IGNORECASE)
_URL_TOKEN = re.compile(
    r"\b(?:https?|wss?)://[^\s]*[?&#](?:token|access_token|key|api_key|apikey|secret|sig|"
    r"signature|password|pass|auth|code|session)=[^\s]+",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# IBAN: two letters, two check digits, 11 to 30 letters/digits, optionally in groups of four.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# Phone numbers: an optional +country code, then 7 or more digits with spaces, slashes, dashes or
# brackets between them (not dots: those are dates). Short numbers ("42", "2024") stay.
_PHONE = re.compile(r"(?<![\w+(])(?:\+|00)?\(?\d(?:[\s/-]?\(?\d\)?){6,14}(?!\w)")
_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{2,32}\b")

RULES: list[tuple[str, re.Pattern[str]]] = [
    ("<url>", _URL_CREDENTIALS),
    ("<url>", _URL_TOKEN),
    ("<email>", _EMAIL),
    ("<iban>", _IBAN),
    ("<phone>", _PHONE),
    ("<user>", _HANDLE),
]


def scrub(text: str) -> str:
    """`text` with e-mail addresses, phone numbers, IBANs, secret-carrying URLs and @handles
    replaced by placeholders."""
    for placeholder, pattern in RULES:
        text = pattern.sub(placeholder, text)
    return text
