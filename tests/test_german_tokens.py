"""German sentence splitting, tokens and detokenising, on a table of cases."""

from __future__ import annotations

import pytest

from engines.corpora import split_sentences
from engines.ngram.keywords import keywords
from engines.ngram.tokens import detokenize, tokenize, tokenize_cased

SENTENCES = [
    ("Das ist z. B. ein Test. Dann geht es weiter.",
     ["Das ist z. B. ein Test.", "Dann geht es weiter."]),
    ("Dr. Müller kam am 3. Oktober. Er blieb.", ["Dr. Müller kam am 3. Oktober.", "Er blieb."]),
    ("Er sagte: „Hallo.“ Dann ging er.", ["Er sagte: „Hallo.“", "Dann ging er."]),
    ("Äpfel, Birnen usw. Das reicht!", ["Äpfel, Birnen usw.", "Das reicht!"]),
    ("Gibt es Nr. 5 noch? Ja.", ["Gibt es Nr. 5 noch?", "Ja."]),
    ("Wie man sein Kind nennt: A. Roma", ["Wie man sein Kind nennt: A. Roma"]),
    ("Das ist d.h. klar. »Wirklich?« Ja!", ["Das ist d.h. klar.", "»Wirklich?«", "Ja!"]),
    ("Wußten Sie schon... ... daß Teig Teig ist?", ["Wußten Sie schon... ... daß Teig Teig ist?"]),
    ("Ende.  Neuer\n Absatz.", ["Ende.", "Neuer Absatz."]),
]


@pytest.mark.parametrize(("text", "expected"), SENTENCES)
def test_german_sentences_end_where_a_reader_ends_them(text, expected):
    assert split_sentences(text, "de") == expected


def test_english_sentences_keep_the_plain_rule():
    assert split_sentences("I met Dr. Who. He left.") == ["I met Dr.", "Who.", "He left."]


TOKENS = [
    ("z. B. Dr. Müller", ["z.", "b.", "dr.", "müller"]),
    ("z.B. und d.h.", ["z.b.", "und", "d.h."]),
    ("am 3. Oktober 2023", ["am", "3.", "oktober", "2023"]),
    ("Er ist 3.", ["er", "ist", "3", "."]),
    ("am 3.10.2023 um 10:30 für 2,5 oder 1.000 Euro",
     ["am", "3.10.2023", "um", "10:30", "für", "2,5", "oder", "1.000", "euro"]),
    ("Machine-Learning-Methoden", ["machine-learning-methoden"]),
    ("Ein- und Ausgang", ["ein-", "und", "ausgang"]),
    ("Garten- oder -pflege", ["garten-", "oder", "-pflege"]),
    ("„Hallo“, »Tschüss« und \"so\"", ['"', "hallo", '"', ",", '"', "tschüss", '"', "und",
                                       '"', "so", '"']),
    ("Wie geht's?", ["wie", "geht's", "?"]),
    ("Na ja...", ["na", "ja", "…"]),
    ("Straßenbahnhaltestelle!", ["straßenbahnhaltestelle", "!"]),
    ("Ende usw.", ["ende", "usw", "."]),
]


@pytest.mark.parametrize(("text", "expected"), TOKENS)
def test_german_tokens(text, expected):
    assert tokenize(text, "de") == expected


def test_cased_tokens_keep_the_spelling():
    assert tokenize_cased("Das KI-Modell sagt „Ja“.", "de") == [
        "Das", "KI-Modell", "sagt", '"', "Ja", '"', "."]


def test_english_tokens_are_unchanged():
    assert tokenize("Dr. Who's \"e-mail\"") == ["dr", ".", "who's", '"', "e-mail", '"']


@pytest.mark.parametrize(("tokens", "lang", "text"), [
    (["er", "sagte", ":", '"', "hallo", ",", "z.", "b.", "du", '"', "."], "de",
     "Er sagte: „hallo, z. b. du“."),
    (['"', "ja", '"', ",", "sagte", "sie", "."], "de", "„Ja“, sagte sie."),
    (["he", "said", '"', "hi", '"', "and", "left", "."], "en", 'He said "hi" and left.'),
    (["am", "3.", "oktober", "…"], "de", "Am 3. oktober…"),
])
def test_detokenize_writes_quotes_as_the_language_does(tokens, lang, text):
    assert detokenize(tokens, lang) == text


def test_abbreviations_and_ordinals_are_no_keywords():
    assert keywords(tokenize("z. B. am 3. Oktober Kuchen", "de"), "de") == ["oktober", "kuchen"]
