"""Each rule of the 1966 interpreter, on small scripts made for the rule."""

from __future__ import annotations

from engines.eliza.interpreter import MAX_STEPS
from engines.eliza.keystack import scan
from engines.eliza.memory import bcd_word, slip_hash
from engines.eliza.pattern import decompose, reassemble
from engines.eliza.state import ChatState
from engines.eliza.tokens import tokenize
from tests.eliza_helpers import Chat, script

KEYS = """\
word DONT = DON'T
word MOTHER tags FAMILY
key LOW
    0
        LOW ANSWER
key ALSO
    0
        ALSO ANSWER
key HIGH rank 5
    0
        HIGH ANSWER
key TOP rank 9
    0
        TOP ANSWER
key I = YOU
    0 YOU 0
        YOU SAID 3
key YOU = I
    0 I 0
        I SAID 3
"""


def test_words_are_upper_case_with_commas_and_periods_as_words():
    assert tokenize("Well, my boyfriend made me come here.") == [
        "WELL", ",", "MY", "BOYFRIEND", "MADE", "ME", "COME", "HERE", "."]
    assert tokenize("Really? Yes! I’m sure") == ["REALLY", ".", "YES", ".", "I'M", "SURE"]
    assert tokenize('Ich "fühle" mich 😀 (so) schlecht') == [
        "ICH", "FÜHLE", "MICH", "SO", "SCHLECHT"]


def test_keywords_of_equal_rank_are_tried_earliest_first():
    _, keystack = scan(tokenize("low also high low top also"), script(KEYS))
    # HIGH outranks all before it: top; TOP outranks HIGH: top; equal or lower: bottom, in order
    assert keystack == ["TOP", "HIGH", "LOW", "ALSO", "LOW", "ALSO"]
    assert Chat(script(KEYS)).say("also low") == "ALSO ANSWER"
    assert Chat(script(KEYS)).say("low also") == "LOW ANSWER"


def test_substitutions_and_tags_alone_make_no_keyword():
    words, keystack = scan(tokenize("dont tell mother"), script(KEYS))
    assert words == ["DON'T", "TELL", "MOTHER"]
    assert keystack == []


def test_substitution_happens_once_per_word():
    words, keystack = scan(tokenize("I like you"), script(KEYS))
    assert words == ["YOU", "LIKE", "I"]  # I -> YOU and YOU -> I swap, never back again
    assert keystack == ["I", "YOU"]
    assert Chat(script(KEYS)).say("I like you") == "YOU SAID LIKE I"


def test_a_delimiter_before_a_keyword_drops_the_text_before_it():
    words, keystack = scan(tokenize("first part, then I said low. and more high"), script(KEYS))
    assert words == ["THEN", "YOU", "SAID", "LOW"]
    assert keystack == ["I", "LOW"]  # HIGH, after the period, is never seen


def test_but_is_a_delimiter_and_question_marks_end_a_clause():
    _, keystack = scan(tokenize("low but high"), script(KEYS))
    assert keystack == ["LOW"]
    _, keystack = scan(tokenize("nothing here? high"), script(KEYS))
    assert keystack == ["HIGH"]


def test_decomposition_zero_takes_as_few_words_as_the_rest_allows():
    words = ["ITS", "MARY", "ITS", "NOT", "MARY", "IT", "IS", "MARY", "TOO"]
    parts = decompose((0, "ITS", 0, "MARY", 1), words, {})
    assert [" ".join(p) for p in parts] == ["", "ITS", "MARY ITS NOT MARY IT IS", "MARY", "TOO"]
    assert decompose((0, "YOU", 0), ["I", "ME"], {}) is None


def test_decomposition_counts_groups_and_tags():
    tags = {"FAMILY": frozenset({"MOTHER", "FATHER"})}
    words = ["YOU", "NEED", "MY", "MOTHER", "NOW"]
    parts = decompose((1, ("*", frozenset({"WANT", "NEED"})), 0, ("/", frozenset({"FAMILY"})), 0),
                      words, tags)
    assert parts == [["YOU"], ["NEED"], ["MY"], ["MOTHER"], ["NOW"]]
    assert decompose((2, 0, 2), ["A", "B", "C"], {}) is None
    assert reassemble(("WHY", 4, "AND", 1), parts) == ["WHY", "MOTHER", "AND", "YOU"]


def test_reassemblies_cycle_per_decomposition_rule():
    chat = Chat(script("""\
key X
    0 X 0 Y 0
        FIRST XY
        SECOND XY
    0
        FIRST X
        SECOND X
        THIRD X
"""))
    said = [chat.say(text) for text in ["x", "x y", "x", "x", "x y", "x", "x y"]]
    assert said == ["FIRST X", "FIRST XY", "SECOND X", "THIRD X", "SECOND XY", "FIRST X",
                    "FIRST XY"]
    assert chat.state.next_reassembly == {"X:1": 1, "X:2": 1}


LINKS = """\
key WHAT
    0
        WHAT ANSWER
key HOW
    => WHAT
key WHY
    0 WHY NOT 0
        WHY NOT 4
        => WHAT
    => WHAT
"""


def test_links_as_a_whole_rule_as_a_reassembly_and_after_the_rules():
    chat = Chat(script(LINKS))
    assert chat.say("how so") == "WHAT ANSWER"
    answer = chat.answer("why not me")
    assert answer.text == "WHY NOT ME"
    answer = chat.answer("why not you")  # second reassembly of WHY NOT: (=WHAT)
    assert (answer.text, answer.trace["path"]) == ("WHAT ANSWER", "WHY -> WHAT")
    assert chat.say("why ever") == "WHAT ANSWER"  # no rule of WHY matches: its final link


def test_pre_rebuilds_the_words_before_following_its_link():
    chat = Chat(script("""\
key I'M = YOU'RE
    0 YOU'RE 0
        PRE YOU ARE 3 => I
key I = YOU
    0 YOU ARE 0
        WHY ARE YOU 4
"""))
    answer = chat.answer("so I'm tired")
    assert answer.text == "WHY ARE YOU TIRED"
    assert answer.trace["path"] == "I'M -> I"


NEWKEY = """\
key DREAM rank 3
    0
        DREAM ANSWER
        NEWKEY
key ME
    0
        ME ANSWER
"""


def test_newkey_tries_the_next_keyword_and_then_none():
    chat = Chat(script(NEWKEY))
    assert chat.say("me dream") == "DREAM ANSWER"
    assert chat.say("me dream") == "ME ANSWER"  # DREAM's second reassembly is NEWKEY
    assert chat.say("dream") == "DREAM ANSWER"
    assert chat.say("dream") == "NONE ONE"  # NEWKEY with an empty keystack: NONE


def test_no_keyword_gets_none_and_a_failed_decomposition_gets_a_built_in_answer():
    chat = Chat(script("""\
key CAN
    0 CAN YOU 0
        YES I CAN
"""))
    assert [chat.say("hello"), chat.say("hello"), chat.say("hello")] == [
        "NONE ONE", "NONE TWO", "NONE ONE"]
    assert chat.state.counter == 4
    assert chat.say("can it") == "NOMATCH ONE"  # the counter stepped to 1


MEMORY = """\
key MY = YOUR rank 2
    0 YOUR 0
        YOUR 3
memory MY
    0 YOUR 0 = FIRST 3
    0 YOUR 0 = SECOND 3
    0 YOUR 0 = THIRD 3
    0 YOUR 0 = FOURTH 3
"""


def test_slip_hash_gives_the_numbers_weizenbaum_and_his_program_give():
    assert slip_hash(bcd_word("ALWAYS"), 7) == 14  # "The word 'always' ... yields 14" (p. 38)
    assert oct(bcd_word("HERE")) == "0o302551256060"  # H E R E blank blank in 7090 BCD
    assert bcd_word("INVENTED") == bcd_word("ED")  # the last six-character chunk counts
    assert [slip_hash(bcd_word(w), 2) for w in ["TIME", "KIDS", "HERE"]] == [0, 1, 3]


def test_the_memory_form_is_chosen_by_the_hash_of_the_last_word():
    chat = Chat(script(MEMORY))
    for text in ["my time", "my kids", "my way here"]:
        chat.say(text)
    assert chat.state.memories == ["FIRST TIME", "SECOND KIDS", "FOURTH WAY HERE"]


def test_a_memory_is_recalled_only_without_keywords_when_the_counter_is_at_four():
    chat = Chat(script(MEMORY))
    assert chat.say("my cat is here") == "YOUR CAT IS HERE"  # counter 2; remembered
    assert chat.say("nothing") == "NONE ONE"  # counter 3
    assert chat.say("my dog is here") == "YOUR DOG IS HERE"  # counter 4, but a keyword
    assert chat.say("nothing") == "NONE TWO"  # counter 1
    assert chat.say("nothing") == "NONE ONE"  # counter 2
    assert chat.say("nothing") == "NONE TWO"  # counter 3
    answer = chat.answer("nothing")  # counter 4: the oldest memory
    assert (answer.text, answer.trace["memory"]) == ("FOURTH CAT IS HERE", True)
    assert chat.state.memories == ["FOURTH DOG IS HERE"]


def test_a_link_cycle_ends_after_a_bounded_number_of_steps():
    chat = Chat(script("key A\n    => B\nkey B\n    => A\n"))
    answer = chat.answer("a")
    assert answer.text == "NONE ONE"
    assert answer.trace["path"].count("->") == MAX_STEPS


def test_a_malformed_stored_state_starts_over():
    assert ChatState.from_json("nonsense") == ChatState()
    state = ChatState.from_json({"counter": 9, "next_reassembly": {"A:1": -1, "B:1": 2},
                                 "memories": ["OLD", 3]})
    assert state == ChatState(1, {"B:1": 2}, ["OLD"])
    assert ChatState.from_json(state.to_json()) == state
