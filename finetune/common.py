"""Only what is common reaches a dataset: the k-people rule of fine-tuning (issue 25).

An adapter answers every chat, so it may learn only what many people wrote: a word, or a
sequence of SEQUENCE_WORDS words, that people wrote but fewer than `[privacy] k_people`
distinct people (one person repeating it a hundred times is one person) is private to them.
In a training example (the prompt a reply answers, and the reply) each private word, and each
word of a private sequence, is replaced by PRIVATE, adjacent ones by one placeholder; an
example whose reply keeps no word of its own is dropped (it would teach nothing but the
placeholder), one whose prompt is all private still counts as feedback on its reply.

Why words and sequences: ELIZA reflects a person's words with the pronouns turned ("my code
is X" -> "your code is X") and the transformer quotes the history in its prompt in its own
frame, so a sequence test alone lets a rare word through in a new frame; the word test alone
lets a secret made of common words through ("the door code is four four nine"). Three words
is the n-gram engine's default order, the span its shared model learns from.

What is public without counting: the packaged corpora every engine learns from in full (what
they hold is no one's secret), and the bot's own words (a sequence no person wrote is not a
person's). People are counted over every stored message of everyone who has not opted out;
text that was forgotten or aged out of the store counts for no one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from bot.quotes import SEQUENCE_WORDS, WORD, Gram, grams, public_grams, words

PRIVATE = "<private>"
__all__ = ["PRIVATE", "SEQUENCE_WORDS", "People", "Rule", "Summary", "keep_common",
           "public_grams"]


@dataclass
class Summary:
    """What the rule did to one export: in its "exported" event and the adapter's manifest."""

    k_people: int
    sequence_words: int = SEQUENCE_WORDS
    examples: int = 0  # voted replies looked at
    scrubbed: int = 0  # kept with at least one private span replaced
    dropped: int = 0  # left out: the reply kept no word of its own
    spans: int = 0  # private spans replaced, prompts and replies together
    why: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class People:
    """How many distinct people wrote each word and each sequence."""

    def __init__(self, texts: Iterable[tuple[int, str]], k: int,
                 public: frozenset[Gram] = frozenset()) -> None:
        per_person: dict[int, set[Gram]] = {}
        for person, text in texts:
            per_person.setdefault(person, set()).update(grams(words(text)))
        self.writers: Counter[Gram] = Counter(g for seen in per_person.values() for g in seen)
        self.k = k
        self.public = public

    def private(self, gram: Gram) -> bool:
        return 0 < self.writers[gram] < self.k and gram not in self.public


def keep_common(text: str, people: People) -> tuple[str, int]:
    """`text` with its private words and sequences replaced; and how many spans were."""
    found = list(WORD.finditer(text))
    tokens = [m[0].lower() for m in found]
    hidden = [people.private((t,)) for t in tokens]
    n = SEQUENCE_WORDS
    for i in range(len(tokens) - n + 1):
        if people.private(tuple(tokens[i:i + n])):
            hidden[i:i + n] = [True] * n
    out, spans, end, i = [], 0, 0, 0
    while i < len(found):
        if not hidden[i]:
            i += 1
            continue
        first = i
        while i < len(found) and hidden[i]:
            i += 1
        out += [text[end:found[first].start()], PRIVATE]
        end, spans = found[i - 1].end(), spans + 1
    return "".join(out) + text[end:], spans


def has_own_words(text: str) -> bool:
    """Anything left but placeholders and punctuation?"""
    return bool(words(re.sub(r"<\w+>", " ", text)))


class Rule:
    """Applies the rule to the rows of one export and counts what it did."""

    def __init__(self, people: People) -> None:
        self.people = people
        self.summary = Summary(k_people=people.k, why=(
            f"words or {SEQUENCE_WORDS}-word sequences written by fewer than {people.k} "
            "distinct people (and not in the packaged corpora) are replaced by "
            f"{PRIVATE}; a reply left with no words of its own is dropped"))

    def apply(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The row with `prompt` and `completion` kept to what is common; None: dropped."""
        self.summary.examples += 1
        prompt, in_prompt = keep_common(str(row["prompt"]), self.people)
        completion, in_reply = keep_common(str(row["completion"]), self.people)
        if in_reply and not has_own_words(completion):
            self.summary.dropped += 1
            return None
        if in_prompt or in_reply:
            self.summary.scrubbed += 1
            self.summary.spans += in_prompt + in_reply
        return row | {"prompt": prompt, "completion": completion}
