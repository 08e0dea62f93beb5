"""nlp.data: the corpus, subsampling, windows, noise, co-occurrence, the demo corpus."""
import numpy as np
import pytest

from common.errors import DatasetError
from nlp import data as nd
from nlp.text import tokenize


def _corpus(lines, min_freq=1):
    return nd.build_corpus(tokenize(lines), min_freq)


def test_corpus_drops_unk_and_keeps_sentence_ids():
    corpus = _corpus(["x <unk> y", "y z"])
    assert corpus.vocab.to_tokens(corpus.ids) == ["x", "y", "y", "z"]
    assert corpus.sentence.tolist() == [0, 0, 1, 1]
    assert corpus.vocab.counts[corpus.vocab["y"]] == 2 and corpus.vocab.counts[0] == 0


def test_keep_probabilities_are_the_books_formula():
    counts = np.array([0, 5000, 100, 1, 3899])
    keep = nd.keep_probabilities(counts, t=1e-3)
    freq = counts[1:] / counts.sum()
    assert keep[1:] == pytest.approx(np.minimum(1.0, np.sqrt(1e-3 / freq)))
    assert keep[0] == 0.0 and keep[3] == 1.0 and keep[1] == pytest.approx(np.sqrt(1e-3 * 9000 / 5000))
    # Empirically: the fraction of a frequent word's tokens kept matches its probability.
    corpus = _corpus(["the " * 900 + "a b c d e f g h i j"] * 20)
    kept = nd.subsample(corpus, np.random.default_rng(0), t=1e-2)
    the = corpus.ids == corpus.vocab["the"]
    expected = nd.keep_probabilities(corpus.vocab.counts, 1e-2)[corpus.vocab["the"]]
    assert kept[the].mean() == pytest.approx(expected, abs=0.01) and kept[~the].all()


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([7, 1, 16, 81, 0])
    p = nd.noise_distribution(counts)
    assert p == pytest.approx(np.array([0, 1, 8, 27, 0]) / 36)  # 1, 16, 81 ** 0.75; <unk> never
    draws = nd.sample_noise(p, (200_000,), np.random.default_rng(1))
    assert np.bincount(draws, minlength=5) / 200_000 == pytest.approx(p, abs=0.004)


def test_window_pairs_stay_in_the_window_and_sentence_and_never_self():
    rng = np.random.default_rng(2)
    sentence = np.repeat(np.arange(40), rng.integers(1, 15, size=40))
    centre, context = nd.window_pairs(sentence, 5, np.random.default_rng(3))
    distance = np.abs(centre - context)
    assert len(centre) > 0 and distance.min() >= 1 and distance.max() <= 5
    assert (sentence[centre] == sentence[context]).all()
    # Each centre's window is symmetric: its context positions are exactly the in-sentence ones
    # within its drawn radius on both sides.
    for c in np.unique(centre)[:50]:
        got = set(context[centre == c].tolist())
        radius = max(abs(j - c) for j in got)
        want = {j for j in range(c - radius, c + radius + 1) if j != c and 0 <= j < len(sentence)
                and sentence[j] == sentence[c]}
        assert got == want
    # The radius is uniform on 1..5: mean pairs per centre in a long sentence is 2 * 3.
    centre, _ = nd.window_pairs(np.zeros(20_000, np.int32), 5, np.random.default_rng(4))
    assert len(centre) / 20_000 == pytest.approx(6.0, abs=0.05)


def test_skip_gram_and_cbow_examples_agree_with_the_pairs():
    corpus = _corpus([" ".join(f"w{i}" for i in range(s, s + 12)) for s in range(0, 60, 12)])
    centres, targets = nd.skip_gram_examples(corpus, np.random.default_rng(5), 3, 4, t=0)
    assert targets.shape == (len(centres), 5) and (targets[:, 1:] != 0).all()
    words = np.array(corpus.vocab.idx_to_token)
    position = {w: int(w[1:]) for w in words[1:]}
    gaps = [abs(position[a] - position[b]) for a, b in zip(words[centres], words[targets[:, 0]])]
    assert 1 <= min(gaps) and max(gaps) <= 3
    contexts, mask, targets = nd.cbow_examples(corpus, np.random.default_rng(5), 3, 2, t=0)
    assert contexts.shape == (60, 6) and targets.shape == (60, 3) and mask.sum(1).min() >= 1
    for row in range(60):
        centre = position[words[targets[row, 0]]]
        near = {position[w] for w in words[contexts[row][mask[row] > 0]]}
        assert centre not in near and all(abs(p - centre) <= 3 and p // 12 == centre // 12 for p in near)


def test_cooccurrence_by_hand():
    corpus = _corpus(["a b c", "b a", "c a b a"])
    rows, cols, values = nd.cooccurrence(corpus, window=2)
    v = corpus.vocab
    x = {(v.to_tokens(r), v.to_tokens(c)): x for r, c, x in zip(rows, cols, values)}
    # a-b: "a b" d=1; "b a" d=1; "c a b a": a-b d=1, b-a d=1, a..a d=2 is a-a.  => 4
    assert x[("a", "b")] == pytest.approx(4.0) and x[("b", "a")] == pytest.approx(4.0)
    # a-c: "a b c" d=2 -> 0.5; "c a b a": c-a d=1 -> 1 (c-a d=3 is outside the window)  => 1.5
    assert x[("a", "c")] == pytest.approx(1.5) and x[("c", "a")] == pytest.approx(1.5)
    # b-c: "a b c" d=1; "c a b a": c-b d=2 -> 0.5  => 1.5;  a-a: "c a b a" d=2 -> 0.5 twice
    assert x[("b", "c")] == pytest.approx(1.5) and x[("a", "a")] == pytest.approx(1.0)
    assert len(x) == 7


def test_glove_weight():
    assert nd.glove_weight([0, 1, 50, 100, 1000]) == pytest.approx(
        [0.0, 0.01 ** 0.75, 0.5 ** 0.75, 1.0, 1.0])


def test_bumped_generator_version_writes_a_fresh_demo_corpus_instead_of_reusing_the_old(monkeypatch, tmp_path):
    old = nd.ptb_directory(demo=True)
    assert old == tmp_path / "cache" / "ptb-demo-v1"
    text = (old / "ptb.train.txt").read_text()
    (old / "ptb.train.txt").write_text("stale words\n")  # what an older generator left
    assert nd.ptb_directory(demo=True) == old and (old / "ptb.train.txt").read_text() == "stale words\n"
    monkeypatch.setattr(nd, "GENERATOR_VERSION", 2)
    new = nd.ptb_directory(demo=True)
    assert new == tmp_path / "cache" / "ptb-demo-v2" and (new / "ptb.train.txt").read_text() == text


@pytest.mark.parametrize("module, finish", [
    ("wikitext", lambda d: [(d / f"wiki.{s}.tokens").write_text("x") for s in ("train", "valid", "test")]),
    ("snli", lambda d: (d / "labels.test").write_text("x")),
    ("imdb", lambda d: (d / "test" / "pos").mkdir(parents=True)),
])
def test_other_nlp_demo_sets_move_to_a_fresh_folder_when_their_version_is_bumped(module, finish, monkeypatch):
    import importlib

    mod = importlib.import_module(f"nlp.{module}")
    written = []

    def generate(directory, **kwargs):  # stands in for the (slower) real generator
        directory.mkdir(parents=True, exist_ok=True)
        finish(directory)
        written.append(directory)

    monkeypatch.setattr(mod, "generate_demo", generate)
    directory = getattr(mod, f"{module}_directory")
    old = directory(demo=True)
    assert directory(demo=True) == old and written == [old]  # same version: cached set reused
    monkeypatch.setattr(mod, "GENERATOR_VERSION", 2)
    new = directory(demo=True)
    assert new != old and written == [old, new] and "-v2" in str(new) and "-v1" in str(old)


def test_demo_corpus_layout_and_empty_corpus(tmp_path):
    directory = nd.generate_demo_corpus(tmp_path / "ptb", seed=1, sentences=50)
    assert sorted(p.name for p in directory.iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    sentences = nd.read_sentences(directory / "ptb.train.txt")
    assert len(sentences) == 50 and all(6 <= len(s) <= 14 for s in sentences)
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(DatasetError, match="is empty"):
        nd.read_sentences(tmp_path / "empty.txt")
