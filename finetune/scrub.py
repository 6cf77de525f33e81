"""Personal data out of training text, before anything is written to disk.

Each kind is replaced by a placeholder that keeps the sentence readable (and teaches the model
the shape, not the value): an e-mail address becomes <email>, and so on. What is found, in
which order and replaced by what is data: the scrub table, scrub.toml beside this module (a new
key shape is a new entry there, not code).

Two well-kept libraries decide what regular expressions cannot: python-stdnum checks an IBAN's
checksum (so "DE12 ..." that is not an account stays, and a lower-case or oddly spaced one is
still found), and phonenumbers (Google's libphonenumber) finds numbers that are valid in some
region, so dates, times, version numbers and ISBNs are never taken for phone numbers.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import phonenumbers
from stdnum import iban

TABLE = Path(__file__).with_name("scrub.toml")
_TABLE = tomllib.loads(TABLE.read_text(encoding="utf-8"))
PHONE_REGIONS = tuple(_TABLE["phone_regions"])  # how local numbers without +code are read

Rule = Callable[[str], str]


def _iban_in(candidate: str, placeholder: str) -> str:
    """The candidate with its longest valid IBAN prefix replaced; unchanged if none."""
    for end in range(len(candidate), 14, -1):
        if not candidate[end - 1].isalnum():
            continue
        if iban.is_valid(re.sub(r"[ -]", "", candidate[:end]).upper()):
            return placeholder + candidate[end:]
    return candidate


def _phones(text: str, placeholder: str) -> str:
    for region in PHONE_REGIONS:
        found = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
        for match in sorted(found, key=lambda m: m.start, reverse=True):
            text = text[:match.start] + placeholder + text[match.end:]
    return text


def _rule(entry: dict) -> Rule:
    """One row of the table as a function of the text."""
    placeholder = entry["placeholder"]
    if entry.get("check") == "phone":
        return lambda text: _phones(text, placeholder)
    pattern = re.compile(entry["pattern"])
    if entry.get("check") == "iban":
        return lambda text: pattern.sub(lambda m: _iban_in(m[0], placeholder), text)
    if entry.get("keep_name"):
        def assignment(m: re.Match[str]) -> str:
            return f"{m[1]}{m[2]}{m[3]}{placeholder}{m[3]}"
        return lambda text: pattern.sub(assignment, text)
    return lambda text: pattern.sub(placeholder, text)


RULES: list[tuple[str, Rule]] = [(entry["name"], _rule(entry)) for entry in _TABLE["rule"]]


def scrub(text: str) -> str:
    """`text` with secrets, key shapes, e-mail addresses, IBANs, phone numbers and @handles
    replaced by placeholders (see scrub.toml)."""
    for _, rule in RULES:
        text = rule(text)
    return text
