"""Whether a candidate reply is a whole phrase of its language, by rules kept as data in
phrases/LANG.toml (a language without a file has no such rules).

An n-gram model judges three words at a time, so a fluent fragment ("In der Liebe.", "Ein
Freund ist ein.") scores like a sentence. German fortunes and quotes are full of such
fragments' beginnings, and 20 German replies judged by hand were mostly fragments until these
checks: a reply ends at a sentence end, not on an article, preposition or conjunction, holds
no colon or comma (a label, a lead-in, spliced clauses), and has a verb: a word the corpus
has right after a subject pronoun ("es gibt", "man kann") that is no closed-class word, not
an infinitive after "zu", and not a modal verb without a second verb; no verb twice, no two
nouns in a row (German nouns are capitalised: `spelling` knows how a word is written), and
the verb no later than after the first noun (German puts it second) and a modal before the
other verb, no start on "und" or "wenn" (half of something, or a subordinate clause alone).
"""

from __future__ import annotations

import functools
import itertools
import tomllib
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engines.ngram.model import LanguageModel
from engines.ngram.vocab import Vocab

RULES_DIR = Path(__file__).with_name("phrases")
_CLOSING = "\"')]"
# A verb follows several subject pronouns ("ich kann", "man kann", "er kann"); an adverb or
# noun seen after one or two of them ("es selten") is no verb. 3: 20 replies judged by hand.
MIN_SUBJECTS = 3


@dataclass(frozen=True)
class PhraseRules:
    sentence_ends: frozenset[str]
    never_inside: frozenset[str]
    function_words: frozenset[str]
    never_last: frozenset[str]
    never_first: frozenset[str]
    max_words: int
    max_unseen: int
    subjects: tuple[str, ...]
    infinitive_marker: str
    modals: frozenset[str]


@functools.cache
def rules(lang: str) -> PhraseRules | None:
    path = RULES_DIR / f"{lang}.toml"
    if not path.is_file():
        return None
    with path.open("rb") as f:
        data = tomllib.load(f)

    def words(key: str) -> frozenset[str]:  # a list, or words separated by whitespace
        value = data[key]
        return frozenset(value.split() if isinstance(value, str) else value)

    return PhraseRules(
        sentence_ends=words("sentence_ends"), never_inside=words("never_inside"),
        function_words=words("function_words"), never_last=words("never_last"),
        never_first=words("never_first"),
        max_words=int(data["max_words"]), max_unseen=int(data["max_unseen"]),
        subjects=tuple(data["subjects"]), infinitive_marker=data["infinitive_marker"],
        modals=words("modals"),
    )


_verbs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its verbs


def verbs(forward: LanguageModel, backward: LanguageModel, vocab: Vocab, found: PhraseRules,
          spelling: Callable[[str], str]) -> frozenset[str]:
    """The words seen right after MIN_SUBJECTS subject pronouns or more ("ich kann", "man
    kann", "er kann") and right before two or more ("kann ich", "kann man": German inverts
    subject and verb), written in lower case, no closed-class words. Adverbs pass the first
    test ("man selten") and mostly fail the second. Kept per model: a re-estimated model gets
    its own."""
    known = _verbs.get(forward)
    if known is None:
        ids = [vocab.ids[s] for s in found.subjects if s in vocab.ids]
        ids = [i for i in ids if i < forward.vocab_size]
        after = Counter(w for i in ids for w in forward.followers(i))
        before = Counter(w for i in ids for w in backward.followers(i))
        words = (vocab.words[w] for w, n in after.items()
                 if n >= MIN_SUBJECTS and before[w] >= MIN_SUBJECTS - 1)
        known = _verbs[forward] = frozenset(
            w for w in words if w not in found.function_words and spelling(w)[:1].islower())
    return known


def fragment(tokens: Sequence[str], found: PhraseRules, verbs: frozenset[str],
             spelling: Callable[[str], str]) -> str:
    """Why the lower-case `tokens` are no whole phrase ("" if they are one)."""
    body = list(tokens)
    while body and body[-1] in _CLOSING:
        body.pop()
    if not body or body[-1] not in found.sentence_ends:
        return "no_sentence_end"
    words = [t for t in body if t[:1].isalnum()]
    if not words or words[-1] in found.never_last:
        return "open_end"
    if words[0] in found.never_first:
        return "open_start"
    if len(words) > found.max_words:
        return "run_on"
    if any(t in found.never_inside for t in body):
        return "lead_in"
    found_verbs = [w for before, w in zip(["", *words], words, strict=False)
                   if w in verbs and before != found.infinitive_marker]
    if not found_verbs:
        return "no_verb"
    if all(w in found.modals for w in found_verbs) and len(found_verbs) < 2:
        return "modal_alone"
    if len(set(found_verbs)) < len(found_verbs):  # "Was ist der Chef ist ein Mensch."
        return "verb_twice"
    nouns = [spelling(w)[:1].isupper() for w in words]
    if any(a and b for a, b in itertools.pairwise(nouns)):  # "Himmel Niederlage"
        return "nouns_in_a_row"
    if sum(nouns[: words.index(found_verbs[0])]) > 1:  # "Katzen die ganze Körper sind."
        return "late_verb"
    if len(found_verbs) > 1 and found_verbs[-1] in found.modals:  # "Wir werden kann."
        return "clause_order"  # a main clause has its modal before the other verb
    return ""
