"""The scrub's table: what must be replaced (and by what) and what must stay as written."""

from __future__ import annotations

import tomllib

import pytest

from finetune.scrub import scrub

HITS = [  # (text, the secret that must be gone, the placeholder that takes its place)
    # e-mail addresses
    ("write to jane.doe+bot@example.co.uk today", "jane.doe+bot@example.co.uk", "<email>"),
    ("Mail an jörg.müller@beispiel.de bitte", "jörg.müller@beispiel.de", "<email>"),
    ("contact: ADMIN@EXAMPLE.ORG.", "ADMIN@EXAMPLE.ORG", "<email>"),
    ("a.b-c_d@sub.domain.io wrote", "a.b-c_d@sub.domain.io", "<email>"),
    # phone numbers, international and local formats
    ("call me on +49 30 1234567 tonight", "1234567", "<phone>"),
    ("or on (030) 123-4567", "123-4567", "<phone>"),
    ("Tel. 0 30 / 12 34 56", "12 34 56", "<phone>"),
    ("Handy 0151 23456789", "23456789", "<phone>"),
    ("ruf 0049 30 1234 5678 an", "1234 5678", "<phone>"),
    ("tel 089/1234567", "1234567", "<phone>"),
    ("call 415-555-2671 now", "555-2671", "<phone>"),
    ("ring +44 20 7946 0958", "7946 0958", "<phone>"),
    ("London 020 7946 0958", "7946 0958", "<phone>"),
    ("Wien +43 1 5880 1234", "5880 1234", "<phone>"),
    ("Zürich +41 44 668 18 00", "668 18 00", "<phone>"),
    ("Paris +33 1 42 68 53 00", "42 68 53 00", "<phone>"),
    ("+1 (415) 555-2671 is my cell", "555-2671", "<phone>"),
    # IBANs: any case, spacing, with a word before them
    ("my IBAN is DE89 3704 0044 0532 0130 00", "3704 0044", "<iban>"),
    ("de89370400440532013000", "370400440532013000", "<iban>"),
    ("IBAN:  DE89  3704  0044  0532  0130  00", "0532", "<iban>"),
    ("iban de89 3704 0044 0532 0130 00 thanks", "0044 0532", "<iban>"),
    ("GB82 WEST 1234 5698 7654 32 is British", "5698 7654", "<iban>"),
    ("AT61 1904 3002 3457 3201", "3002 3457", "<iban>"),
    ("ch9300762011623852957", "011623852957", "<iban>"),
    ("FR1420041010050500013M02606 bitte", "0500013M02606", "<iban>"),
    ("IBAN DE89-3704-0044-0532-0130-00, danke", "3704-0044", "<iban>"),  # dashes (issue 25.5)
    ("gb82-west-1234-5698-7654-32", "5698-7654", "<iban>"),
    # URLs with credentials or secrets
    ("clone https://bob:hunter2@git.example.com/x.git", "hunter2", "<url>"),
    ("ftp://user:pw@files.example.net/a", "user:pw", "<url>"),
    ("https://discord.com/api/webhooks/1234567890/AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp", "<url>"),
    ("https://discordapp.com/api/webhooks/42/s3cr3t-t0ken", "s3cr3t-t0ken", "<url>"),
    ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX", "XXXXXXXXXXXX", "<url>"),
    ("https://api.telegram.org/bot123456:ABCdefGhIJKlmNoPQRsTUVwxyZ123456789/getMe",
     "ABCdefGhIJKlmNoPQRsTUVwxyZ", "<url>"),
    ("open https://example.com/reset?token=abc123def", "abc123def", "<secret>"),
    ("https://x.example/cb?state=1&code=4/0AfJohXk&scope=a", "4/0AfJohXk", "<secret>"),
    ("s3.amazonaws.com/b/k?X-Amz-Signature=deadbeef1234&X-Amz-Date=1", "deadbeef1234", "<secret>"),
    ("https://a.example/?access_token=ya29.a0AfH6", "ya29.a0AfH6", "<secret>"),
    # secrets typed as assignments or in a sentence
    ("reset_token=9f8e7d6c5b4a", "9f8e7d6c5b4a", "<secret>"),
    ("client_secret=GOCSPX-abcdef", "GOCSPX-abcdef", "<secret>"),
    ("jwt=eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9", "<secret>"),
    ("API_KEY = sk-live-0123456789", "sk-live-0123456789", "<secret>"),
    ("my password: hunter2!", "hunter2!", "<secret>"),
    ("Passwort: Sommer2024", "Sommer2024", "<secret>"),
    ("token: ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F292c", "<secret>"),
    # key shapes on their own, without a name that says so (issue 25.5)
    ("use sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z now", "Ab3dEf6hIj9kLm2n", "<secret>"),
    ("sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "abcdefghijklmnop", "<secret>"),
    ("mine is ghp_16C7e42F292c6912E7710c838347Ae178B4a ok", "ghp_16C7e42F292c", "<secret>"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv", "11ABCDEFG012", "<secret>"),
    ("the bot: xoxb-123456789012-1234567890123-AbCdEfGhIjKl", "1234567890123", "<secret>"),
    ("AKIAIOSFODNN7EXAMPLE is the key id", "IOSFODNN7EXAMPLE", "<secret>"),
    ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N",
     "eyJzdWIiOiIxMjM0In0", "<secret>"),
    ("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw is the bot", "AAHdqTcvCH1vGWJx", "<secret>"),
    ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N",
     "dozjgNryP4J3jVmNHl0w5N", "<secret>"),
    ('password = "hunter2"', "hunter2", "<secret>"),
    ("api_key='abc123xyz'", "abc123xyz", "<secret>"),
    ('{"token": "xyz123abc"}', "xyz123abc", "<secret>"),
    ('TOKEN="123456789:AAAA"', "123456789:AAAA", "<secret>"),
    # handles, any script, with inner dots
    ("ask @jane_doe about it", "jane_doe", "<user>"),
    ("frag @jörg danach", "jörg", "<user>"),
    ("cc @Alice.Smith please", "Alice.Smith", "<user>"),
    ("@bob-the-builder said so", "bob-the-builder", "<user>"),
]

KEPT = [  # must come out exactly as it went in
    "In 2024 we had 42 cats; see https://example.com/cats on 26.11.2026 at 10:30.",
    "The meeting is on 2024-01-15 at 14:30.",
    "Am 12.03.2024 um 14:30 Uhr, nicht am 13.03.",
    "Version 10.0.19041 and 1.2.3 and v2.13.0",
    "ISBN 978-3-16-148410-0",
    "The server is at 192.168.1.10:8080",
    "pi is 3.14159265358979",
    "from 10:30-11:45 and 1999-2024",
    "Order 123456 shipped.",
    "KI für alle ist sehr wichtig.",
    "The key: patience, and the monkey=banana rule.",
    "Use the code in section 4.2, see page 12345.",
    "price: 1.299,00 € or $1,299.00",
    "DE12 is not an account and neither is DE00 0000 0000 0000 0000 00",
    "an e-mail address needs a domain: user@localhost stays",
    "Weizenbaum wrote ELIZA in 1966 at MIT.",
    "a.b@c is not an address",
    "email me at the usual place",
    "The key = the answer, and if key == 'x' then fine.",
    "Use the pass = the one at the gate.",
    "no risk-taking: sk-8 is a skate shop, AKIA a name, xoxo-hugs a greeting",
]


@pytest.mark.parametrize(("text", "secret", "placeholder"), HITS)
def test_scrub_replaces_each_kind(text, secret, placeholder):
    cleaned = scrub(text)
    assert secret not in cleaned, cleaned
    assert placeholder in cleaned, cleaned


@pytest.mark.parametrize("text", KEPT)
def test_scrub_leaves_dates_times_versions_and_ordinary_text_alone(text):
    assert scrub(text) == text


def test_the_patterns_are_data_in_the_scrub_table():
    from finetune.scrub import RULES, TABLE

    names = [entry["name"] for entry in tomllib.loads(TABLE.read_text())["rule"]]
    assert [name for name, _ in RULES] == names
    assert {"github token", "slack token", "aws access key id", "iban"} <= set(names)


def test_the_table_is_large_enough_to_mean_something():
    assert len(HITS) + len(KEPT) >= 60
