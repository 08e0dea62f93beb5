"""recsys.fm: the O(kn) pairwise term by brute force, beats logistic regression, 2 replicas = 1, Criteo rows."""
import numpy as np
import pytest
from sklearn.metrics import log_loss

from common import distribute
from common.errors import UsageError
from recsys import criteo, fm
from recsys.ctr import CTR_THRESHOLD, CTRData, generate_ctr
from tests.cli_helpers import one_replica_vs_two, run
from tests.recsys._fm import check_ctr_predict, randomised_fm


def test_pairwise_term_equals_sum_over_field_pairs():
    x = np.array([[0, 4, 8], [1, 3, 7]], np.int32)
    model, v, w, b = randomised_fm(x)
    expected = [b + w[row].sum() + sum(v[row[f]] @ v[row[g]] for f in range(3) for g in range(f + 1, 3))
                for row in x]
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5)
    logistic = fm.FactorizationMachine(num_features=9, factors=3, interactions=False)
    logistic(x)
    logistic.linear.embeddings.assign(model.linear.embeddings)
    logistic.bias.assign(model.bias)
    np.testing.assert_allclose(np.asarray(logistic(x)), [b + w[row].sum() for row in x], rtol=1e-5)


@pytest.fixture
def small_ctr(tmp_path):
    """A 12,000-row dataset from the demo generator, in the book's ctr/ layout."""
    return generate_ctr(tmp_path / "ctr", rows=(10000, 2000))


def test_fm_beats_logistic_regression_and_two_replicas_match_one(small_ctr, capsys):
    args = ["--data-dir", small_ctr, "--epochs", 3, "--batch-size", 256, "--lr", 0.01]
    single, mirrored = one_replica_vs_two(fm.main, args, capsys)
    assert mirrored["auc"] == pytest.approx(single["auc"], abs=3e-3)
    code, logistic, err = run(fm.main, ["train", *args, "--no-interactions", "--run-dir", "lr"], capsys)
    assert code == 0, err
    assert single["auc"] > logistic["auc"] + 0.03  # the generator has pairwise interactions
    assert single["val_rows"] == 1000 and single["train_rows"] == 9000 and single["test_rows"] == 2000
    code, evaluated, _ = run(fm.main, ["evaluate", "--run-dir", "single"], capsys)  # data: what train read
    assert code == 0 and evaluated["auc"] == pytest.approx(single["auc"], abs=1e-6)


def test_fm_runs_on_real_criteo_rows(shared_data, capsys):
    path = shared_data / "criteo_sample" / "criteo_train_first1000_padded.tsv"
    code, result, err = run(fm.main, ["train", "--dataset", "criteo", "--data-dir", path.parent,
                                      "--data-file", path.name, "--epochs", 2, "--batch-size", 100], capsys)
    assert code == 0, err
    # streamed into the cache: each row goes to the test part with p 0.1, to validation with p 0.1 of the rest
    assert result["test_rows"] + result["val_rows"] + result["train_rows"] == 1000
    assert 60 < result["test_rows"] < 140 and 50 < result["val_rows"] < 130
    # the same cached parts the run read: the constant predictor (the training click rate for every row)
    cache = criteo.prepare_criteo(path, CTR_THRESHOLD, 0.1, 0.1, 0)
    fit, test = cache.part("fit"), cache.part("test")
    assert len(test) == result["test_rows"]
    constant = log_loss(test.labels, np.full(len(test), float(np.mean(fit.labels))), labels=[0, 1])  # 0.511
    # measured at seed 0: AUC 0.672, log loss 0.488; random scores give AUC 0.5 +- 0.07 on these 101 rows
    # (21 clicks) and an untrained FM (p = 0.5) a log loss of 0.693
    assert result["auc"] > 0.62 and result["logloss"] < constant


def test_fm_learns_generated_criteo_streamed(capsys):
    code, result, err = run(fm.main, ["train", "--dataset", "criteo", "--demo", "--epochs", 2, "--batch-size", 1024],
                            capsys)
    assert code == 0, err
    assert result["train_rows"] > 40_000 and result["auc"] > 0.62  # random scores: 0.5; measured 0.67
    code, evaluated, _ = run(fm.main, ["evaluate"], capsys)  # reads the same cached parts
    assert code == 0 and evaluated["auc"] == pytest.approx(result["auc"], abs=1e-6)


def test_predict_scores_rows_as_lines_of_the_data(small_ctr, tmp_path, capsys):
    """fm.predict: a row's click probability is the model's on the row encoded as in training, whether the row
    comes with its label, without, or in a file; bad rows are one line."""
    check_ctr_predict(fm, small_ctr, "api")
    code, _, err = run(fm.main, ["predict", "--run-dir", "api", "--row", "1\t2\t3"], capsys)
    assert code == 1 and "--row line 1: expected 34 values (optionally after a label), got 3" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(fm.main, ["predict", "--run-dir", "api"], capsys)
    assert code == 2 and "give the rows to score" in err
    code, _, err = run(fm.main, ["predict", "--run-dir", "api", "--data", tmp_path / "nope.csv"], capsys)
    assert code == 2 and "nope.csv: no such file" in err


def test_predict_encodes_criteo_lines_as_the_training_cache(tmp_path, capsys):
    """A Criteo run's predict of its own file's lines gives the model's probabilities on the rows the streamed
    cache holds for those lines (the same tokens, the same vocabulary), labelled or not."""
    path = criteo.generate_criteo(tmp_path / "criteo" / "train.txt", 4000)
    code, _, err = run(fm.main, ["train", "--dataset", "criteo", "--data-dir", path.parent, "--epochs", 1,
                                 "--batch-size", 512, "--run-dir", "c"], capsys)
    assert code == 0, err
    lines = path.read_text().splitlines()[:300]
    parts = criteo._assign_parts(criteo.row_uniforms(0, 0, len(lines)), 0.1, 0.1)
    cache = criteo.prepare_criteo(path, CTR_THRESHOLD, 0.1, 0.1, 0)
    features = np.concatenate([cache.part(name).features[:int((parts == p).sum())]
                               for p, name in enumerate(criteo.PARTS)])
    order = np.argsort(np.argsort(parts, kind="stable"), kind="stable")  # line j's row in `features`
    logits = fm.load("c").predict(features[order], verbose=0)
    expected = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    (tmp_path / "rows.txt").write_text("\n".join(line.split("\t", 1)[1] for line in lines) + "\n")  # unlabelled
    for answer in (fm.predict("c", data=str(tmp_path / "rows.txt")), fm.predict("c", row=lines[:5])):
        np.testing.assert_allclose(answer["probabilities"], expected[:answer["rows"]], atol=1e-6)
    assert answer["rows"] == 5


def test_fm_bad_input_is_one_line(tmp_path, capsys):
    code, _, err = run(fm.main, ["train", "--dataset", "criteo"], capsys)
    assert code == 2 and "--dataset criteo needs --data-dir" in err
    (tmp_path / "train.txt").write_text("1\t" + "\t".join(["1"] * 12) + "\n")
    code, _, err = run(fm.main, ["train", "--dataset", "criteo", "--data-dir", tmp_path], capsys)
    assert code == 1 and "line 1: expected 40 fields" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(fm.main, ["train", "--dataset", "criteo", "--data-dir", tmp_path, "--data-file", "nope"],
                       capsys)
    assert code == 1 and "nope not found" in err and len(err.strip().splitlines()) == 1



def test_each_replica_reads_its_share_of_the_batch_which_must_divide(tmp_path):
    features = np.lib.format.open_memmap(tmp_path / "f.npy", "w+", np.int32, (4096, 39))
    labels = np.lib.format.open_memmap(tmp_path / "l.npy", "w+", np.float32, (4096,))
    part = CTRData(features, labels, [1] * 39)
    two = distribute.make_strategy("mirrored", devices=2)
    batches = fm.dataset(fm.Config(batch_size=512), part, 0, two)
    assert [[int(x.shape[0]) for x in two.experimental_local_results(y)] for _, y in batches] == [[256, 256]] * 8
    with pytest.raises(UsageError, match="--batch-size 513 does not split evenly over 2 replicas"):
        fm.dataset(fm.Config(batch_size=513), part, 0, two)  # was 256 rows a worker, 512 a step
