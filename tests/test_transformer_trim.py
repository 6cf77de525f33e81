"""A reply cut by its token cap ends at its last complete sentence: streamed a sentence at a
time, the held rest dropped when cut, an ellipsis when there is no sentence at all."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engines.transformer.trim import ELLIPSIS, SentenceStream, trim_cut

PIECES = st.lists(st.sampled_from(["Men", " are", " all", " alike", ".", "!", " So", ",", " th",
                                   "\n", "1.", " 3.5", " \"Quite.\"", " e.g.", "?"]), max_size=14)


def streamed(pieces: list[str], cut: bool) -> list[str]:
    stream = SentenceStream()
    return [stream.add(piece) for piece in pieces] + [stream.finish(cut)]


@given(PIECES)
def test_a_reply_that_ended_by_itself_streams_whole(pieces):
    assert "".join(streamed(pieces, cut=False)) == "".join(pieces)


@given(PIECES)
def test_a_cut_reply_streams_what_trimming_the_whole_text_gives(pieces):
    text = "".join(pieces)
    shown = "".join(streamed(pieces, cut=True))
    assert shown == trim_cut(text)
    assert text.startswith(shown.removesuffix(ELLIPSIS))  # only ever shortened


def test_a_cut_reply_ends_at_its_last_sentence_or_with_an_ellipsis():
    assert trim_cut("Men are all alike. So,") == "Men are all alike."
    assert trim_cut("Yes! \"Quite.\" And th") == "Yes! \"Quite.\""
    assert trim_cut("It costs 3.5 euros") == "It costs 3.5…"  # a decimal point ends nothing
    assert trim_cut("Sure:\n\n1. Apples\n2. Pe") == "Sure:\n\n1. Apples"  # nor a list number
    assert trim_cut("Hello there.") == "Hello there."  # cut right at its end: complete
    assert trim_cut("I think that, perhaps, wh") == "I think that, perhaps…"  # no half word
    assert trim_cut("") == ""


def test_sentences_go_out_as_they_end_and_the_rest_waits():
    stream = SentenceStream()
    assert stream.add("Hello there") == ""
    assert stream.add(". How") == "Hello there."  # confirmed by the space after it
    assert stream.add(" are you?") == ""
    assert stream.add(" I") == " How are you?"
    assert stream.finish(cut=True) == ""
