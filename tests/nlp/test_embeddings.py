"""nlp.embeddings: loading both text formats, similar/analogy on hand-made vectors, evaluation
checked against SciPy on the real GloVe-50d vectors, and the one-line errors."""
import numpy as np
import pytest

from common.errors import DatasetError, UsageError
from nlp import embeddings as E
from tests.cli_helpers import run

WORDS = ["king", "queen", "man", "woman", "apple", "Paris"]
MATRIX = np.array([[1, 1, 0, 0], [1, -1, 0, 0], [0, 1, 0.1, 0], [0, -1, 0.1, 0], [0, 0, 0, 1], [0.5, 0, 1, 0]],
                  dtype=np.float32)


def _write(path, header=False):
    lines = [f"{w} " + " ".join(f"{x:g}" for x in row) for w, row in zip(WORDS, MATRIX)]
    path.write_text(("6 4\n" if header else "") + "\n".join(lines) + "\n")
    return path


def test_both_formats_load_the_same(tmp_path):
    glove = E.load_vectors(_write(tmp_path / "g.txt"))
    w2v = E.load_vectors(_write(tmp_path / "w.txt", header=True))
    assert glove.words == w2v.words == WORDS and np.array_equal(glove.matrix, w2v.matrix)
    assert "paris" in glove and np.array_equal(glove.vector("PARIS"), MATRIX[5])  # case-insensitive


def test_similar_and_analogy_on_hand_made_vectors(tmp_path):
    vectors = E.load_vectors(_write(tmp_path / "g.txt"))
    top = vectors.similar("king", 2)
    cos = MATRIX[[2, 5]] @ MATRIX[0] / np.linalg.norm(MATRIX[[2, 5]], axis=1) / np.linalg.norm(MATRIX[0])
    assert [w for w, _ in top] == ["man", "Paris"] and [c for _, c in top] == pytest.approx(cos, abs=1e-6)
    # man : king :: woman : queen, with the three query words excluded.
    assert vectors.analogy("man", "king", "woman", 1)[0][0] == "queen"
    with pytest.raises(UsageError, match="'pear' is not in the vocabulary"):
        vectors.similar("pear")


def test_bad_vector_files_name_the_line(tmp_path):
    (tmp_path / "dims.txt").write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(DatasetError, match="line 2: 2 values where the vectors have 3"):
        E.load_vectors(tmp_path / "dims.txt")
    (tmp_path / "nan.txt").write_text("a 1 2\nb 1 x2\n")
    with pytest.raises(DatasetError, match="line 2: 'x2' is not a number"):
        E.load_vectors(tmp_path / "nan.txt")
    (tmp_path / "sim.txt").write_text("# header\na\tb\t1.0\nc d 2\n")
    with pytest.raises(DatasetError, match="line 3: expected 'word1<TAB>word2<TAB>score'"):
        E.read_similarity(tmp_path / "sim.txt")


def test_evaluate_on_real_glove_matches_scipy(shared_data, tmp_path):
    stats = pytest.importorskip("scipy.stats")
    vectors = E.load_vectors(shared_data / "glove.6b.50d_top20k" / "vec.txt")
    rng = np.random.default_rng(0)
    known = [w for w in vectors.words[100:3000]]
    pairs = [(known[i], known[j]) for i, j in rng.integers(len(known), size=(200, 2))]
    # Human-like scores: the true cosine plus noise, and three pairs with an unknown word.
    cos = [float(vectors.unit[vectors.index[a]] @ vectors.unit[vectors.index[b]]) for a, b in pairs]
    scores = np.array(cos) + rng.normal(0, 0.2, len(cos))
    lines = [f"{a}\t{b}\t{s:.4f}" for (a, b), s in zip(pairs, scores)] + [f"zzqx{i}\tthe\t5" for i in range(3)]
    (tmp_path / "sim.tsv").write_text("# a comment\n" + "\n".join(lines) + "\n")
    (tmp_path / "an.txt").write_text(": capital\nathens greece berlin germany\nparis france rome italy\n"
                                     "zzqx a b c\n: family\nman king woman queen\n")
    result = E.evaluate(vectors, tmp_path / "sim.tsv", tmp_path / "an.txt")
    assert result["spearman"] == pytest.approx(stats.spearmanr(cos, scores).statistic, abs=1e-4)
    assert result["similarity_pairs"] == 200 and result["similarity_coverage"] == pytest.approx(200 / 203, abs=1e-4)
    assert result["analogy_questions"] == 3 and result["analogy_coverage"] == 0.75
    # GloVe-50d answers these three classic analogies correctly (checked by brute force here).
    for a, b, c, d in [("athens", "greece", "berlin", "germany"), ("paris", "france", "rome", "italy"),
                       ("man", "king", "woman", "queen")]:
        assert vectors.analogy(a, b, c, 1)[0][0] == d
    assert result["analogy_acc"] == 1.0 and result["analogy_sections"] == {"capital": 1.0, "family": 1.0}


def test_command_line_tools_and_errors(tmp_path, capsys):
    path = _write(tmp_path / "g.txt")
    code, out, _ = run(E.main, ["similar", "king", "-k", 1, "--vectors", path], capsys)
    assert code == 0 and out["neighbours"] == ["man"]
    code, out, _ = run(E.main, ["analogy", "man", "king", "woman", "--vectors", path], capsys)
    assert code == 0 and out["neighbours"] == ["queen"]
    code, _, err = run(E.main, ["analogy", "man", "king", "pear", "--vectors", path], capsys)
    assert code == 2 and "'pear' is not in the vocabulary" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "bad.txt").write_text("a 1 2\nb 1\n")
    code, _, err = run(E.main, ["similar", "a", "--vectors", tmp_path / "bad.txt"], capsys)
    assert code == 1 and "bad.txt line 2" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "sim.tsv").write_text("king\tqueen\t8\nking queen 8\n")
    code, _, err = run(E.main, ["evaluate", "--vectors", path, "--similarity", tmp_path / "sim.tsv"], capsys)
    assert code == 1 and "sim.tsv line 2: expected 'word1<TAB>word2<TAB>score'" in err


def test_spearman_by_hand_with_ties_and_constant_input():
    # one swap of neighbouring ranks among four: 1 - 6 x 2 / (4 x 15)
    assert E.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # average ranks 1, 2.5, 2.5, 4 against 1..4: 4.5 / sqrt(4.5 x 5)
    assert E.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / np.sqrt(10))
    assert np.isnan(E.spearman([1, 1, 1], [1, 2, 3])) and np.isnan(E.spearman([1], [2]))
