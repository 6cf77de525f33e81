"""`python -m engines.ngram eval` and the packaged corpora it is benchmarked on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engines import corpora
from engines.ngram.__main__ import main
from engines.ngram.training import train
from engines.ngram.vocab import BOS, EOS

DATA = Path(__file__).parent / "data"


def test_eval_prints_counts_oov_and_kenlm_style_perplexity(capsys, tmp_path):
    train_file, test_file = DATA / "ngram_tiny.txt", tmp_path / "test.txt"
    test_file.write_text("the cat sat on the mat\nthe zebra sat on a unicorn\nzebra\n")
    assert main(["eval", "--order", "3", "--train", str(train_file), "--test",
                 str(test_file)]) == 0
    out = capsys.readouterr().out
    vocab, model = train([line.split() for line in train_file.read_text().splitlines()], 3)
    logs, oov, tokens = 0.0, 0, 0
    for line in test_file.read_text().splitlines():
        history = [BOS]
        for word in [*vocab.encode(line.split()), EOS]:
            tokens += 1
            if word == 0:  # OOV: counted apart, left out of the perplexity
                oov += 1
            else:
                logs += math.log10(model.prob_of(history, word))
            history.append(word)
    assert oov == 3 and f"OOV: {oov}" in out
    assert f"tokens scored: {tokens} " in out and "train time:" in out
    assert f"perplexity excluding OOVs: {10 ** (-logs / (tokens - oov)):.4f}" in out
    for k, n in enumerate(model.sizes, start=1):
        assert f"{k}-grams: {n} " in out


def test_eval_names_a_missing_file(capsys, tmp_path):
    assert main(["eval", "--train", str(tmp_path / "nope.txt"), "--test", str(tmp_path)]) == 2
    assert "nope.txt: no such file" in capsys.readouterr().err


def test_the_packaged_corpora_give_sentences_in_both_languages():
    english, german = corpora.sentences("en"), corpora.sentences("de")
    assert len(english) > 10_000 and len(german) > 100
    assert all(s and s == " ".join(s.split()) for s in english[:2000] + german)
    assert any("geht" in s for s in german)
    assert "```" not in " ".join(english)
    with pytest.raises(ValueError, match="no corpus for language 'xx'"):
        corpora.sentences("xx")
