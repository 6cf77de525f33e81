"""The n-gram model itself: modified Kneser-Ney estimation against KenLM's lmplz and against
hand-computed values, proper distributions, online learning, snapshots."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from engines.ngram import snapshot
from engines.ngram.counts import NgramCounts
from engines.ngram.kneser_ney import FALLBACK, adjusted_counts, discounts, estimate
from engines.ngram.rows import unique_rows
from engines.ngram.training import Corpus, train
from engines.ngram.vocab import BOS, EOS, UNK

DATA = Path(__file__).parent / "data"


def read_arpa(path: Path) -> dict[tuple[str, ...], tuple[float, float]]:
    """{n-gram: (log10 p, log10 backoff)} from an ARPA file."""
    grams: dict[tuple[str, ...], tuple[float, float]] = {}
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and not line.startswith("\\"):
            backoff = float(parts[2]) if len(parts) > 2 else 0.0
            grams[tuple(parts[1].split())] = (float(parts[0]), backoff)
    return grams


def sentences_of(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", ["ngram_tiny", "ngram_fallback"])
def test_every_probability_and_backoff_equals_kenlm_lmplz(name):
    """The .arpa files are lmplz -o 3 --discount_fallback output for the .txt beside them;
    ngram_fallback needs the fallback discounts for orders 2 and 3."""
    vocab, model = train(sentences_of(DATA / f"{name}.txt"), 3)
    arpa = read_arpa(DATA / f"{name}.arpa")
    assert sum(model.sizes) == len(arpa)
    for gram, (log_p, log_b) in arpa.items():
        ids = vocab.encode(gram)
        if gram != ("<s>",):
            assert math.log10(model.prob_of(ids[:-1], ids[-1])) == pytest.approx(log_p, abs=2e-6)
        row = int(model.index(np.array([ids]))[0])
        assert math.log10(model.backoff[len(ids) - 1][row]) == pytest.approx(log_b, abs=2e-6)
    assert model.fallback == ([False, False, False] if name == "ngram_tiny"
                              else [False, True, True])


def test_discounts_follow_chen_and_goodman_on_a_hand_computed_example():
    # n1 = 5, n2 = 3, n3 = 2, n4 = 1  ->  Y = 5 / (5 + 2*3) = 5/11
    adjusted = np.array([1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 7])
    found, used_fallback = discounts(adjusted)
    y = 5 / 11
    assert not used_fallback
    assert found == pytest.approx((1 - 2 * y * 3 / 5, 2 - 3 * y * 2 / 3, 3 - 4 * y * 1 / 2))
    assert found == pytest.approx((5 / 11, 12 / 11, 23 / 11))


def test_discounts_fall_back_where_counts_of_counts_leave_them_undefined():
    assert discounts(np.array([1, 1, 2, 2])) == (FALLBACK, True)  # no n3
    assert discounts(np.array([1, 3, 3, 3, 3, 3])) == (FALLBACK, True)  # D out of range


def test_adjusted_counts_are_continuation_counts_except_at_the_top_and_after_bos():
    """Sentences "a b" and "c b", order 2: the bigrams keep raw counts; unigram b was seen
    after two distinct words (a, c); a and c only after <s>; </s> after one word (b)."""
    counts = NgramCounts(2)
    counts.add([[3, 4], [5, 4]])  # a=3, b=4, c=5
    grams = adjusted_counts(counts, 6)
    unigrams = grams[1][1]
    assert unigrams.tolist() == [0, 0, 1, 1, 2, 1]  # <unk> <s> </s> a b c
    bigrams = {tuple(r): c for r, c in zip(grams[2][0].tolist(), grams[2][1].tolist(),
                                           strict=True)}
    assert bigrams == {(BOS, 3): 1, (BOS, 5): 1, (3, 4): 1, (5, 4): 1, (4, EOS): 2}


def random_corpus(rng: random.Random, words: int, sentences: int) -> list[list[str]]:
    vocabulary = [f"w{i}" for i in range(words)]
    return [[rng.choice(vocabulary[: rng.randint(2, words)]) for _ in range(rng.randint(0, 9))]
            for _ in range(sentences)]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_over_the_vocabulary_for_random_contexts(order):
    rng = random.Random(order)
    vocab, model = train(random_corpus(rng, 30, 300), order)
    for _ in range(40):
        context = [BOS, *[rng.randrange(len(vocab)) for _ in range(rng.randint(0, 4))]]
        p = model.distribution(context)
        assert p.sum() == pytest.approx(1.0, abs=1e-9)
        assert p[BOS] == 0 and (p[p > 0] > 0).all() and p[EOS] > 0 and p[UNK] > 0
        word = rng.randrange(len(vocab))
        if word != BOS:
            assert model.prob_of(context, word) == pytest.approx(p[word], rel=1e-9)

def test_cached_lookups_and_samples_equal_uncached_ones(monkeypatch):
    """The scalar paths keep what they looked up; a cache that fills up is emptied. Whatever
    the cache holds, probabilities are the full distribution's and samples follow the
    continuations' masses exactly as a fresh model draws them."""
    from engines.ngram import model as model_module

    rng = random.Random(11)
    corpus = random_corpus(rng, 25, 300)
    contexts = [[BOS, *[rng.randrange(28) for _ in range(rng.randint(0, 3))]] for _ in range(60)]
    _, fresh = train(corpus, 3)
    expected = [fresh.distribution(c) for c in contexts]
    draws = [fresh.sample(c, random.Random(i)) for i, c in enumerate(contexts)]
    monkeypatch.setattr(model_module, "CACHE_ENTRIES", 7)
    _, cached = train(corpus, 3)
    for _ in range(3):  # cold, warm, and after the small caches were emptied on the way
        for i, context in enumerate(contexts):
            for word in (EOS, UNK, 5, 17, 200):  # 200: past the vocabulary, so <unk>
                known = word if word < len(expected[i]) else UNK
                assert cached.prob_of(context, word) == pytest.approx(expected[i][known],
                                                                      rel=1e-12)
            assert cached.sample(context, random.Random(i)) == draws[i]
    assert 0 < len(cached._rows_of) <= 7 and 0 < len(cached._followers) <= 7


def test_corpus_scoring_agrees_with_single_lookups():
    rng = random.Random(7)
    vocab, model = train(random_corpus(rng, 20, 200), 3)
    test = [[*vocab.encode(s), len(vocab) + 5] for s in random_corpus(rng, 25, 30)]
    logp, oov = model.score(test)
    expected = []
    for sentence in test:
        history = [BOS]
        for word in [*sentence, EOS]:
            expected.append(math.log10(model.prob_of(history, word)))
            history.append(word if word < len(vocab) else UNK)
    assert logp == pytest.approx(expected, abs=1e-9)
    assert oov.sum() == sum(1 for s in test for w in s if w >= len(vocab) or w == UNK)


def test_online_updates_equal_batch_training_on_the_same_text():
    rng = random.Random(3)
    text = random_corpus(rng, 25, 120)
    batch = Corpus(3)
    batch.add(text)
    online = Corpus(3)
    online.add(text[:50])
    online.models()  # a model in between must not disturb the counts
    for sentence in text[50:]:
        online.add([sentence])
    assert online.vocab.words == batch.vocab.words
    for one, other in zip(online.models(), batch.models(), strict=True):
        assert one.sizes == other.sizes and one.discounts == other.discounts
        for k in range(3):
            assert np.array_equal(one.keys[k], other.keys[k])
            assert np.allclose(one.prob[k], other.prob[k], rtol=1e-12)


def test_counting_in_chunks_equals_counting_at_once(monkeypatch):
    rng = random.Random(5)
    sentences = [[rng.randrange(3, 40) for _ in range(rng.randint(0, 12))] for _ in range(500)]
    whole = NgramCounts(3)
    whole.add(sentences)
    monkeypatch.setattr("engines.ngram.counts.CHUNK_TOKENS", 50)
    chunked = NgramCounts(3)
    chunked.add(sentences)
    for k in (2, 3):
        assert all(np.array_equal(a, b) for a, b in zip(whole.table(k), chunked.table(k),
                                                        strict=True))


def test_rows_too_wide_to_pack_are_counted_the_same_way():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 4, size=(300, 3)).astype(np.int32)
    wide = small + (1 << 30)  # 3 x 31 bits: no longer fits one int64
    (rows, counts), (wide_rows, wide_counts) = unique_rows(small), unique_rows(wide)
    assert np.array_equal(rows + (1 << 30), wide_rows) and np.array_equal(counts, wide_counts)
    assert counts.sum() == 300 and len(rows) == len({tuple(r) for r in small.tolist()})


def test_an_empty_corpus_still_gives_a_distribution():
    counts = NgramCounts(3)
    model = estimate(counts, 5)
    assert model.distribution([BOS]).sum() == pytest.approx(1.0)


def test_snapshot_round_trip_keeps_header_and_arrays(tmp_path):
    path = tmp_path / "s.npz"
    arrays = {"rows": np.arange(12, dtype=np.int32).reshape(4, 3), "h": np.array([1, 2], np.uint64)}
    snapshot.save(path, {"words": ["<unk>", "ä"], "order": 3}, arrays)
    header, loaded = snapshot.load(path)
    assert header == {"format": snapshot.FORMAT_VERSION, "words": ["<unk>", "ä"], "order": 3}
    assert all(np.array_equal(arrays[k], loaded[k]) and arrays[k].dtype == loaded[k].dtype
               for k in arrays)


def test_a_snapshot_of_another_format_or_a_damaged_one_is_refused_clearly(tmp_path, monkeypatch):
    path = tmp_path / "s.npz"
    monkeypatch.setattr(snapshot, "FORMAT_VERSION", 99)
    snapshot.save(path, {}, {})
    monkeypatch.undo()
    with pytest.raises(snapshot.SnapshotError, match="format 99, this engine reads format 1"):
        snapshot.load(path)
    path.write_bytes(b"not a zip file")
    with pytest.raises(snapshot.SnapshotError, match="unreadable"):
        snapshot.load(path)
    with pytest.raises(snapshot.SnapshotError, match="no snapshot"):
        snapshot.load(tmp_path / "missing.npz")
