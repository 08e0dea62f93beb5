"""recsys.deepfm: shares FM's embeddings, beats FM on generated interactions, 2 replicas = 1."""
import numpy as np
import pytest

from recsys import deepfm, fm
from recsys.ctr import generate_ctr
from tests.cli_helpers import one_replica_vs_two, run
from tests.recsys._fm import check_ctr_predict, randomised_fm


def test_deep_part_adds_to_the_fm_logit_with_shared_embeddings():
    x = np.array([[0, 4, 8], [2, 3, 6]], np.int32)
    model, v, w, b = randomised_fm(x, hidden=[4], dropout=0.0)
    dense, out = model.deep[0], model.deep_out
    expected = []
    for row in x:
        fm_logit = b + w[row].sum() + sum(v[row[f]] @ v[row[g]] for f in range(3) for g in range(f + 1, 3))
        hidden = np.maximum(v[row].reshape(-1) @ np.asarray(dense.kernel) + np.asarray(dense.bias), 0)
        expected.append(fm_logit + hidden @ np.asarray(out.kernel)[:, 0] + float(np.asarray(out.bias)[0]))
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-4)


def test_deepfm_two_replicas_match_one(tmp_path, capsys):
    data_dir = generate_ctr(tmp_path / "ctr", rows=(4000, 1000))
    single, mirrored = one_replica_vs_two(deepfm.main, ["--data-dir", data_dir, "--epochs", 1, "--hidden", "16,8",
                                                        "--dropout", 0, "--batch-size", 256], capsys)
    assert mirrored["auc"] == pytest.approx(single["auc"], abs=3e-3)
    code, evaluated, _ = run(deepfm.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 0 and evaluated["auc"] == pytest.approx(single["auc"], abs=1e-6)


def test_predict_scores_rows_as_lines_of_the_data(tmp_path):
    data_dir = generate_ctr(tmp_path / "ctr", rows=(4000, 1000))
    check_ctr_predict(deepfm, data_dir, "api", hidden=(16, 8))


@pytest.mark.slow
def test_deepfm_beats_fm_beats_logistic_regression_on_generated_interactions(capsys):
    results = {}
    for name, main, extra in (("lr", fm.main, ["--no-interactions"]), ("fm", fm.main, []),
                              ("deepfm", deepfm.main, [])):
        code, results[name], err = run(main, ["train", "--demo", "--run-dir", name, *extra], capsys)
        assert code == 0, err
    assert results["deepfm"]["auc"] > results["fm"]["auc"] > results["lr"]["auc"] + 0.1
