"""The output policy over a streamed reply: cleaning delta by delta gives, after every delta,
exactly what cleaning the whole text so far gives (the reference is the one-shot rule as it
was before cleaning became incremental)."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.policy import ZERO_WIDTH_SPACE, OutputCleaner, clean_output

MENTION = re.compile(r"(?<![\w<])@(?=\w)")


def reference(text: str, limit: int | None) -> str:
    def visible(ch: str, before: str) -> bool:
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs"):
            return True
        return ch == "\u200d" and before != "" and unicodedata.category(before) == "So"

    text = "".join(ch for i, ch in enumerate(text) if visible(ch, text[i - 1] if i else ""))
    text = MENTION.sub("@" + ZERO_WIDTH_SPACE, text)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


# Few characters, chosen to meet the rules' edges: mentions, words, joiners, emoji, controls.
TRICKY = st.sampled_from(list("a@<_ .\n\t\x07\x1b\u200d\u200b\u202e👩💻é"))
DELTAS = st.lists(st.text(TRICKY, max_size=6), max_size=12)


@settings(max_examples=400, deadline=None)
@given(deltas=DELTAS, limit=st.one_of(st.none(), st.integers(1, 30)))
def test_streamed_cleaning_equals_cleaning_the_whole_text_so_far(deltas, limit):
    cleaner, so_far = OutputCleaner(limit), ""
    for delta in deltas:
        so_far += delta
        assert cleaner.add(delta) == reference(so_far, limit), (deltas, so_far)
    assert clean_output(so_far, limit) == reference(so_far, limit)


def test_a_mention_split_across_deltas_is_still_neutralised():
    cleaner = OutputCleaner(None)
    assert cleaner.add("hi @") == "hi @"
    assert cleaner.add("everyone") == "hi @" + ZERO_WIDTH_SPACE + "everyone"


def test_a_joiner_at_the_start_is_dropped_not_an_error():
    assert clean_output("\u200dhi", None) == "hi"
