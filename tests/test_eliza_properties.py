"""Whatever people type, ELIZA answers; and chats never see each other's state."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines.eliza.interpreter import respond
from engines.eliza.pattern import _fits, decompose
from engines.eliza.state import ChatState
from engines.eliza.tokens import _NORMAL, _TOKEN, tokenize
from tests.eliza_helpers import PAPER, Chat, doctor

SCRIPTS = {"en": doctor("en"), "de": doctor("de")}
EMOJI = st.sampled_from(["😀", "👍", "❤️", "🤮", "👩‍👩‍👧", "🇩🇪", "\u200d", "\ufe0f"])
KNOWN = st.sampled_from(["MY", "I", "YOU", "REMEMBER", "WAS", "MEIN", "ICH", "SIE", "WIE",
                         "ABER", "BUT", ",", ".", "?", "!", "DREAMT", "PRE", "NEWKEY", "0"])
WORDS = st.lists(st.one_of(st.text(max_size=8), EMOJI, KNOWN), min_size=1, max_size=40)


def _ten_thousand(text: str) -> str:
    """`text` repeated to a line of exactly 10,000 characters."""
    return (text * (10_000 // len(text) + 1))[:10_000]


LINE = st.one_of(
    st.text(),
    st.just(""),
    st.text(min_size=1, max_size=30).map(_ten_thousand),
    WORDS.map(" ".join).filter(bool).map(_ten_thousand),
    WORDS.map(" ".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(lang=st.sampled_from(["en", "de"]), lines=st.lists(LINE, min_size=1, max_size=6))
def test_every_line_gets_an_answer_and_json_state(lang, lines):
    state = ChatState()
    for line in lines:
        answer = respond(SCRIPTS[lang], state, line)
        assert isinstance(answer.text, str) and answer.text.strip()
        json.dumps(answer.trace)
        state = ChatState.from_json(json.loads(json.dumps(state.to_json())))


def test_long_lines_of_keywords_are_answered():
    for lang, words in [("en", "REMEMBER WAS MY I YOU DREAMT"), ("de", "MEINE ICH SIE WIE")]:
        chat = Chat(SCRIPTS[lang])
        for word in words.split():
            assert chat.say(f"{word} " * (10_000 // (len(word) + 1)))


def test_two_chats_interleaved_answer_as_each_would_alone():
    german = ["Männer sind alle gleich.", "Nun, mein Freund hat mich hergeschickt.",
              "Ich bin unglücklich.", "Mein Vater.", "Tyrannen.", "Hallo", "Tyrannen."] * 2
    english = [text for text, _ in PAPER]
    alone_en = _alone("en", english)
    alone_de = _alone("de", german)
    en, de = Chat(SCRIPTS["en"]), Chat(SCRIPTS["de"])
    other_en = Chat(SCRIPTS["en"])  # a third chat with the same script, talking nonsense
    together_en, together_de = [], []
    for i in range(max(len(english), len(german))):
        if i < len(english):
            together_en.append(en.say(english[i]))
        other_en.say("my cat is here, I remember")
        if i < len(german):
            together_de.append(de.say(german[i]))
    assert together_en == alone_en
    assert together_de == alone_de


def _alone(lang: str, lines: list[str]) -> list[str]:
    chat = Chat(SCRIPTS[lang])
    return [chat.say(line) for line in lines]


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_text_splits_as_the_regular_expression_does(text):
    assert tokenize(text) == _TOKEN.findall(text.translate(_NORMAL).upper())


def _ymatch(pattern, words, tags):
    """YMATCH by its definition: the first way to split the words, each 0 taking as few as it
    can from the left, tried one split after another (exponential: for small cases only)."""
    def split(p, at):
        if p == len(pattern):
            return [] if at == len(words) else None
        element = pattern[p]
        sizes = range(len(words) - at + 1) if element == 0 else [
            element if isinstance(element, int) else 1]
        for size in sizes:
            part = words[at:at + size]
            if len(part) < size or (not isinstance(element, int)
                                    and not _fits(element, part[0], tags)):
                continue
            rest = split(p + 1, at + size)
            if rest is not None:
                return [part, *rest]
        return None
    return split(0, 0)


TAGS = {"T": frozenset({"A", "B"}), "U": frozenset({"C"})}
ELEMENT = st.sampled_from([0, 0, 1, 2, "A", "B", "C", ("*", frozenset({"A", "C"})),
                           ("/", frozenset({"T"})), ("/", frozenset({"U", "T"}))])


@settings(max_examples=400)
@given(pattern=st.lists(ELEMENT, min_size=1, max_size=6),
       words=st.lists(st.sampled_from("ABCD"), max_size=8))
def test_decomposition_is_ymatch_by_its_definition(pattern, words):
    assert decompose(tuple(pattern), words, TAGS) == _ymatch(pattern, words, TAGS)
