"""nlp.glove: demo clusters recovered, 1 vs 2 replicas, the loss against its formula, bad input."""
from pathlib import Path

import numpy as np
import pytest

from nlp import data as nd
from nlp import embeddings as E
from nlp import glove
from tests.cli_helpers import one_replica_vs_two, run


def test_glove_loss_is_the_weighted_least_squares():
    model = glove.build(glove.Config(embed_size=3), 4)
    rows, cols, counts = np.array([0, 1, 3]), np.array([1, 2, 0]), np.array([1.0, 50.0, 300.0], np.float32)
    w, c = model.centre.numpy(), model.context.numpy()
    model.centre_bias.assign([0.1, -0.2, 0.3, 0.0])
    model.context_bias.assign([0.0, 0.5, 0.0, -0.1])
    b, bc = model.centre_bias.numpy(), model.context_bias.numpy()
    want = nd.glove_weight(counts) * ((w[rows] * c[cols]).sum(1) + b[rows] + bc[cols] - np.log(counts)) ** 2
    got = model.example_losses({"rows": rows, "cols": cols, "counts": counts}).numpy()
    assert got == pytest.approx(want, rel=1e-5)


def test_glove_recovers_demo_clusters_and_two_replicas_match_one(capsys):
    single, mirrored = one_replica_vs_two(glove.main, ["--demo", "--epochs", 6], capsys)
    assert single["cluster_precision"] >= 0.9
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-4)
    a, b = (E.load_vectors(Path(d) / "vectors.txt") for d in ("single", "mirrored"))
    assert np.allclose(a.matrix, b.matrix, atol=1e-4)
    code, out, _ = run(glove.main, ["analogy", "chip", "intel", "stock", "-k", 3, "--run-dir", "single"], capsys)
    assert code == 0 and set(out["neighbours"]) <= set(nd.DEMO_TOPICS["finance"])


def test_glove_bad_input(tmp_path, capsys):
    code, _, err = run(glove.main, ["train", "--data-dir", tmp_path / "nowhere", "--run-dir", "r"], capsys)
    assert code == 1 and "does not exist" in err and not Path("r").exists()
    code, _, err = run(glove.main, ["similar", "chip", "--run-dir", tmp_path], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
