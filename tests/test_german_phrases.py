"""German replies are whole phrases: the rules of engines/ngram/phrases/de.toml on a table of
judged sentences, the verbs they rely on taken from a model's counts, and the search's
preference for a whole phrase over a fragment (with the fragment kept when there is nothing
else, as on a small corpus)."""

from __future__ import annotations

import random

import pytest

from engines.ngram.phrases import fragment, rules, verbs
from engines.ngram.search import Search, search
from engines.ngram.tokens import tokenize
from engines.ngram.training import Corpus
from engines.ngram.verbatim import CopyGuard
from engines.ngram.vocab import BOS, EOS

VERBS = frozenset({"ist", "gibt", "geht", "kann", "kaufen", "finden", "kommt", "war"})
NOUNS = {"wetter", "liebe", "himmel", "niederlage", "chef", "mann", "freund", "computer",
         "mensch", "buch", "politiker"}


def spelling(word: str) -> str:
    return word.capitalize() if word in NOUNS else word


@pytest.mark.parametrize(("text", "why"), [
    ("Es ist kein Wetter.", ""),
    ("Der Mann geht!", ""),
    ("„Der Mensch ist ein Buch.“", ""),                  # a closing quote after the end
    ("Man kann einen Computer kaufen.", ""),             # modal with a second verb
    ("Ich war Politiker.", ""),
    ("Der Mann geht", "no_sentence_end"),
    ("Ein Freund ist ein.", "open_end"),                 # an article ends nothing
    ("Es gibt Liebe und.", "open_end"),
    ("Frage an Radio Eriwan: ist das so?", "lead_in"),
    ("Der Himmel, desto mehr.", "lead_in"),              # comma: two clauses' halves
    ("In der Liebe.", "no_verb"),
    ("Der Chef zu finden.", "no_verb"),                  # an infinitive is no sentence's verb
    ("Man kann Liebe.", "modal_alone"),
    ("Was ist der Chef ist ein Mensch.", "verb_twice"),
    ("Der Mensch ist vom Himmel Niederlage.", "nouns_in_a_row"),
    ("Der Chef die ganze Liebe ist.", "late_verb"),       # two nouns before the verb
    ("Der Chef ist die ganze Liebe.", ""),
    ("Und der Mann geht.", "open_start"),
    ("Wenn der Mann kommt.", "open_start"),             # a subordinate clause alone
    ("Wir kaufen kann.", "clause_order"),                # a main clause's modal comes first
    ("Es ist ein Mann und ein Chef und ein Freund und ein Buch.", "run_on"),
])
def test_german_whole_phrases_and_fragments_on_a_table(text, why):
    assert fragment(tokenize(text, "de"), rules("de"), VERBS, spelling) == why


def test_a_language_without_rules_has_no_check():
    assert rules("en") is None


GERMAN = ["Ich kann das.", "Du kannst das.", "Er kann das.", "Man kann das.",
          "Ich liebe die Liebe.", "Die Liebe ist schön.", "Es ist schön.", "Man ist schön.",
          "Er ist da.", "Kann ich das?", "Kann man das?", "Ist es schön?", "Ist er da?"]


def test_verbs_are_words_seen_after_three_subject_pronouns_written_in_lower_case():
    corpus = Corpus(3)
    corpus.add([tokenize(s, "de") for s in GERMAN])
    forward, _ = corpus.models()

    def written(word):
        return "Liebe" if word == "liebe" else word

    _, backward = corpus.models()
    found = verbs(forward, backward, corpus.vocab, rules("de"), written)
    # "kann" and "ist" follow 3+ pronouns and precede 2+; "liebe" follows only "ich" (and is
    # written "Liebe"); "kannst" only "du"; "das" and "da" are closed-class words
    assert found == {"kann", "ist"}


def searched(sentences, keyword, budget=0.2):
    corpus = Corpus(3)
    corpus.add([tokenize(s, "de") for s in sentences])
    forward, backward = corpus.models()
    words = corpus.vocab.words
    known = verbs(forward, backward, corpus.vocab, rules("de"), str)

    def check(ids):
        why = fragment([words[i] for i in ids], rules("de"), known, str)
        return (2 if why else 0), why

    setup = Search(forward, backward, CopyGuard(50), budget, 30, random.Random(0), words, check,
                   seen_half=True)
    found = search(setup, [], [corpus.vocab.ids[keyword]])
    return found, [words[i] for i in found.tokens], check


def test_the_search_answers_with_a_whole_phrase_when_one_can_be_made():
    fragments = ["In der großen Stadt.", "Aus der großen Stadt."] * 5
    found, _, check = searched(GERMAN + fragments + ["Die Stadt ist groß."], "stadt")
    assert found.tier == 0 and check(found.tokens) == (0, "")
    assert found.rejected.get("no_verb", 0) > 0  # the fragments were made, and passed over


def test_the_search_falls_back_to_a_fragment_when_nothing_else_can_be_made():
    found, tokens, check = searched(["In der großen Stadt."] * 3, "stadt", budget=0.05)
    assert found.tier == 2 and check(found.tokens) == (2, "no_verb")
    assert "stadt" in tokens


def test_growing_only_by_what_the_corpus_says_uses_no_unseen_trigram():
    corpus = Corpus(3)
    corpus.add([tokenize(s, "de") for s in GERMAN])
    forward, _ = corpus.models()
    rng = random.Random(5)
    for _ in range(200):
        tokens = [BOS]
        while len(tokens) < 20 and (word := forward.sample(tokens, rng, seen=True)) != EOS:
            tokens.append(word)
        assert forward.unseen(tokens[1:]) == 0
    exact = 0
    for _ in range(200):  # exact sampling backs off now and then, even on this corpus
        tokens = [BOS]
        while len(tokens) < 20 and (word := forward.sample(tokens, rng)) != EOS:
            tokens.append(word)
        exact += forward.unseen(tokens[1:])
    assert exact > 0
