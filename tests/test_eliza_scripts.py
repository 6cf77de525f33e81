"""The bundled scripts, the German DOCTOR in conversation, and the script reader's errors."""

from __future__ import annotations

import pytest

from engines.eliza.parser import ScriptError, parse_script
from tests.eliza_helpers import FRAME, Chat, doctor, script

GERMAN = [  # the paper's conversation, in German and Sie-form, then a few more keywords
    ("Männer sind alle gleich.", "IN WELCHER WEISE"),
    ("Sie ärgern uns immer mit irgendetwas.", "KÖNNEN SIE EIN BESTIMMTES BEISPIEL NENNEN"),
    ("Nun, mein Freund hat mich hergeschickt.", "IHR FREUND HAT SIE HERGESCHICKT"),
    ("Er sagt, ich bin oft deprimiert.", "ES TUT MIR LEID ZU HÖREN, DASS SIE DEPRIMIERT SIND"),
    ("Das stimmt. Ich bin unglücklich.",
     "GLAUBEN SIE, DASS ES IHNEN HILFT, HIERHER ZU KOMMEN, UM NICHT UNGLÜCKLICH ZU SEIN"),
    ("Ich brauche etwas Hilfe, so viel ist sicher.",
     "WAS WÜRDE ES IHNEN BEDEUTEN, ETWAS HILFE ZU BEKOMMEN"),
    ("Vielleicht könnte ich lernen mit meiner Mutter auszukommen.",
     "ERZÄHLEN SIE MIR MEHR ÜBER IHRE FAMILIE"),
    ("Meine Mutter kümmert sich um mich.", "WER SONST IN IHRER FAMILIE KÜMMERT SICH UM SIE"),
    ("Mein Vater.", "IHR VATER"),
    ("Sie sind wie mein Vater in mancher Hinsicht.", "WELCHE ÄHNLICHKEIT SEHEN SIE"),
    ("Sie sind nicht sehr aggressiv, aber ich glaube, Sie wollen nicht, dass ich das merke.",
     "WAS LÄSST SIE GLAUBEN, DASS ICH NICHT SEHR AGGRESSIV BIN"),
    ("Sie hassen mich.", "WARUM GLAUBEN SIE, DASS ICH SIE HASSEN WÜRDE"),
    ("Sie sind ängstlich.", "GEFÄLLT ES IHNEN ZU GLAUBEN, DASS ICH ÄNGSTLICH BIN"),
    ("Mein Vater hat Angst vor allen.", "IHR VATER - WAS FÄLLT IHNEN DAZU NOCH EIN"),
    ("Tyrannen.", "ABER IHR FREUND HAT SIE HERGESCHICKT"),
    ("Können Sie mir helfen?", "SIE GLAUBEN, ICH KÖNNTE IHNEN HELFEN - NICHT WAHR"),
    ("Ich kann nicht schlafen.", "WOHER WISSEN SIE, DASS SIE NICHT SCHLAFEN KÖNNEN"),
    ("Ich erinnere mich an meinen Hund.", "DENKEN SIE OFT AN IHREN HUND"),
    ("Du bist ein Rechner!", "MACHEN IHNEN COMPUTER SORGEN"),
]


def test_a_german_conversation_in_sie_form():
    chat = Chat(doctor("de"))
    assert [chat.say(text) for text, _ in GERMAN] == [reply for _, reply in GERMAN]


def test_german_delimiter_is_aber_and_memory_is_on_mein():
    german = doctor("de")
    assert german.delimiters == {",", ".", "ABER"}
    assert german.memory.keyword == "MEIN"
    chat = Chat(german)
    answer = chat.answer("Meine Schwester ist nett")
    assert answer.trace["path"] == "MEINE -> MEIN"  # MEINE links to MEIN, whose pops remember
    assert chat.state.memories == [answer.trace["remembered"]]


def test_the_english_script_has_the_appendix_rules():
    english = doctor("en")
    keywords = {word for word, entry in english.entries.items() if entry.is_keyword}
    assert len(keywords) == 48  # the appendix's keyword entries, NONE apart
    assert {"DONT", "ME", "MOTHER", "FEEL"}.isdisjoint(keywords)  # substitutions and DLISTs
    assert english.entries["COMPUTER"].rank == 50 and english.entries["NAME"].rank == 15
    assert english.tags["BELIEF"] == {"FEEL", "THINK", "BELIEVE", "WISH"}
    assert english.tags["FAMILY"] >= {"MOTHER", "MOM", "FATHER", "WIFE", "CHILDREN"}
    assert len(english.memory.forms) == 4
    assert english.greeting == "HOW DO YOU DO.  PLEASE TELL ME YOUR PROBLEM"
    assert english.version.startswith("doctor.en@")


@pytest.mark.parametrize(("text", "message"), [
    ("key X\n   0\n        A\n", "indent by 0, 4 or 8 spaces"),
    ("whatever X\n", "unknown directive"),
    ("key X\n    0 X\n        A 3\n", "part 3 of a 2-part pattern"),
    ("key X\n    => Y\n", "X links to Y, which is no keyword"),
    ("key X\n    0\n", "a pattern needs reassemblies"),
    ("key X\n", "a key needs rules or a link"),
    ("word X rank 2\n", "a rank needs rules"),
    ("memory MY\n    0 YOUR 0 = A\n    0 YOUR 0 = B\n    0 YOUR 0 = C\n", "1, 2, 4, 8"),
    ("key X\n    0 (+A B)\n        A\n", "(*A B C) or (/TAG)"),
    ("word X = Y\nword X = Z\n", "X is defined twice"),
])
def test_script_errors_name_the_line(text, message):
    with pytest.raises(ScriptError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*")):
        script(text)


def test_a_script_needs_a_greeting_nomatch_and_none():
    with pytest.raises(ScriptError, match="a script needs"):
        parse_script("greeting HI\nkey X\n    0\n        A\n", "bare")
    assert script("").none.rules[0].reassemblies[1].source == "NONE TWO"
    assert FRAME.startswith("greeting HELLO")
