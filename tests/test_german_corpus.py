"""Corpus discovery: a temporary folder of text files stands in for an installed corpus (such
as Debian's fortunes-de), in a corpora table of the test's own."""

from __future__ import annotations

import os

from engines import corpora
from engines.ngram.__main__ import main as ngram_main
from engines.transformer import tiny
from tests.ngram_helpers import started_on_corpora

FORTUNES = """Wer anderen eine Grube gräbt, fällt selbst hinein. Das ist z. B. ein Sprichwort.
%
Der Computer rechnet am 3. Oktober schneller.
\t\t-- Ein Autor
%
"""


def install(folder):
    """Lay out a corpus as the fortune package does: text files, .dat indexes, .u8 links."""
    folder.mkdir()
    (folder / "sprueche").write_text(FORTUNES, encoding="utf-8")
    (folder / "sprueche.dat").write_bytes(b"\x00\x01binary")
    os.symlink(folder / "sprueche", folder / "sprueche.u8")
    (folder / "bilder").write_text("(o_o)\n%\n", encoding="utf-8")


def test_a_missing_corpus_is_named_with_how_to_install_it(table):
    found = corpora.describe("de")
    assert found.used == ["lecture excerpt"]
    assert found.missing == ["fortunes-xx (apt-get install fortunes-xx)"]
    assert any("KI für alle" in s for s in corpora.sentences("de"))


def test_an_installed_corpus_is_found_read_once_and_changes_the_fingerprint(table):
    before = corpora.fingerprint("de")
    install(table / "fortunes")
    assert corpora.fingerprint("de") != before
    found = corpora.describe("de")
    assert found.used == ["lecture excerpt", "fortunes-xx"] and found.missing == []
    sentences = corpora.sentences("de")
    assert sentences.count("Das ist z. B. ein Sprichwort.") == 1  # the .u8 link is not read
    assert "Der Computer rechnet am 3. Oktober schneller." in sentences
    assert not any("Autor" in s or "(o_o)" in s or "binary" in s for s in sentences)
    (table / "fortunes" / "sprueche").write_text("Neu.\n", encoding="utf-8")
    assert corpora.fingerprint("de") != corpora.fingerprint("de", [table / "fortunes"])
    assert "Neu." in corpora.sentences("de")  # an updated corpus is read anew


def test_a_named_folder_of_text_files_is_read_in_paragraphs(table):
    folder = table / "texte"
    folder.mkdir()
    (folder / "a.txt").write_text("Erster Absatz.\n\nZweiter\nAbsatz.\n", encoding="utf-8")
    (folder / "b.md").write_text("Nicht gelesen.\n", encoding="utf-8")
    assert corpora.sentences("de", [folder])[-2:] == ["Erster Absatz.", "Zweiter Absatz."]
    assert str(folder) in corpora.describe("de", [folder]).used
    assert "(no such folder)" in corpora.describe("de", [table / "nope"]).missing[-1]


async def test_the_engine_notices_a_newly_installed_corpus_and_says_so(table):
    data = table / "data"
    data.mkdir()
    thin = await started_on_corpora(data)
    assert "de " in thin.info().detail
    assert "more: fortunes-xx (apt-get install fortunes-xx)" in thin.info().detail
    thin_tokens = thin.languages["de"].tokens
    install(table / "fortunes")
    rich = await started_on_corpora(data)  # the snapshot of the thin corpus is not reused
    assert rich.languages["de"].tokens > thin_tokens
    assert "from lecture excerpt, fortunes-xx" in rich.info().detail
    assert "more:" not in rich.info().detail
    assert "grube" in rich.languages["de"].corpus.vocab.ids
    again = await started_on_corpora(data)  # and the new snapshot is
    assert again.languages["de"].tokens == rich.languages["de"].tokens


async def test_corpus_dirs_from_the_config_feed_the_model(table):
    folder = table / "texte"
    folder.mkdir()
    (folder / "x.txt").write_text("Der Zauberlehrling fegt den Boden.\n", encoding="utf-8")
    engine = await started_on_corpora(table, corpus_dirs={"de": [str(folder)]})
    assert "zauberlehrling" in engine.languages["de"].corpus.vocab.ids
    assert str(folder) in engine.info().detail


def test_the_tiny_transformer_pretrains_on_the_installed_corpus(table):
    assert not any("Grube" in s for s in tiny.sentences("de"))
    install(table / "fortunes")
    assert any("Grube" in s for s in tiny.sentences("de"))


def test_eval_reports_held_out_perplexity_of_the_installed_corpus(table, capsys):
    install(table / "fortunes")
    assert ngram_main(["eval", "--lang", "de"]) == 0
    out = capsys.readouterr().out
    assert "corpora (de): lecture excerpt, fortunes-xx" in out
    assert "held-out test:" in out and "perplexity excluding OOVs:" in out
    assert ngram_main(["eval", "--lang", "xx"]) == 2
    assert ngram_main(["eval"]) == 2
