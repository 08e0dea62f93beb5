"""recsys.mf / neumf / caser `export`: the SavedModel, run in a fresh process that imports only TensorFlow, takes
the data's user ids and returns `predict`'s top-k unrated items exactly and their scores within 1e-4; with k = all
items, exactly the user's unrated items come back (the rated ones padded with -1 / -inf); an unknown user id fails
that request with the documented error while the process goes on serving; `saved_model_cli` lists the signature."""

import numpy as np
import pytest

from recsys import caser, caser_model, mf, mf_model, movielens, neumf, neumf_model
from recsys.splits import load_splits
from tests.export_helpers import call_exported, check_refusals, saved_model_cli_show

MODELS = {"mf": (mf, mf_model, "predicted_ratings"), "neumf": (neumf, neumf_model, "scores"),
          "caser": (caser, caser_model, "scores")}


def _unrounded_predict(monkeypatch, model_module):
    """`predict` with its scores rounded to 7 places, not 3-4 (the comparison is at 1e-4)."""
    monkeypatch.setattr(model_module, "recommend", lambda ctx, data, scores_of, key="scores", digits=4:
                        movielens.recommend(ctx, data, scores_of, key, 7))


def _export_equals_predict(name, monkeypatch, k=None):
    """Train `name` on the demo for an epoch into "run", export it (`--k k`, default 10: `kept` items) to "served",
    compare its top 10 with `predict`'s and return its answer for users 3, 1, 300, 42."""
    command, model_module, key = MODELS[name]
    command.train(command.Config(epochs=1), demo=True, run_dir="run")
    result = command.export("run", out="served", k=k)
    kept = min(k or 10, 400)
    assert result["signature"] == {"inputs": {"user": ["int64", [None]]},
                                   "outputs": {"items": ["int64", [None, kept]], "scores": ["float32", [None, kept]]}}
    users = [3, 1, 300, 42]
    served = call_exported("served", [{"user": users}, {"user": [3, 123456]}, {"user": [1]}], allow_errors=True)
    got, unknown, after = served
    assert "InvalidArgumentError" in unknown["__error__"] and "unknown user id" in unknown["__error__"]
    np.testing.assert_array_equal(after["items"][0], got["items"][1])  # the server lives on after the error
    _unrounded_predict(monkeypatch, model_module)
    for row, user in enumerate(users[:2]):
        p = command.predict("run", user=user)
        assert p["user"] == user and got["items"][row][:10].tolist() == p["items"]
        np.testing.assert_allclose(got["scores"][row][:10], p[key], atol=1e-4)
    shown = saved_model_cli_show("served")
    assert "signature_def['serving_default']" in shown and "inputs['user'] tensor_info" in shown
    assert "outputs['items'] tensor_info" in shown and "DT_INT64" in shown
    return got


@pytest.mark.slow
@pytest.mark.parametrize("name", ["neumf", "caser"])
def test_export_equals_predict_in_a_fresh_process(name, monkeypatch):
    _export_equals_predict(name, monkeypatch)


def test_mf_export_equals_predict_and_excludes_exactly_the_rated_items(monkeypatch, capsys):
    got = _export_equals_predict("mf", monkeypatch, k=500)  # more than the items: all 400, the rated ones last
    train_set = load_splits(None, True, "random", 0.1, 0.05, 0).train
    assert train_set.num_items == 400 and got["items"].shape == (4, 400)
    for row, user in [(0, 3), (3, 42)]:
        rated = set(train_set.file_ids("item", train_set.items[train_set.file_ids("user", train_set.users) == user]))
        finite = np.isfinite(got["scores"][row])
        assert set(got["items"][row][finite].tolist()) == set(train_set.file_ids("item", np.arange(400))) - rated
        assert (got["items"][row][~finite] == -1).all() and (~finite).sum() == len(rated) > 0
        assert (np.diff(got["scores"][row][finite]) <= 0).all()  # best first
    check_refusals(mf.main, capsys)


@pytest.mark.slow  # over the fast suite's time budget (minutes of 2-core CPU for the new tests)
@pytest.mark.parametrize("dataset", ["criteo", "ctr"])
def test_deepfm_export_equals_predict_on_raw_rows(dataset):
    from recsys import criteo, ctr, deepfm

    deepfm.train(deepfm.Config(epochs=1, dataset=dataset), demo=True, run_dir="run")
    result = deepfm.export("run", out="served")
    fields = criteo.FIELDS if dataset == "criteo" else ctr.CTR_FIELDS
    assert result["signature"] == {"inputs": {"row": ["string", [None, fields]]},
                                   "outputs": {"probability": ["float32", [None]]}}
    path = criteo.demo_file() if dataset == "criteo" else ctr.ctr_dir(None, True) / "test.csv"
    with open(path, encoding="latin-1") as f:
        lines = [next(f).rstrip("\n") for _ in range(40)][1 if dataset == "ctr" else 0:]
    sep = "\t" if "\t" in lines[0] else ","
    rows = [line.split(sep)[-fields:] for line in lines]
    rows[0][-1] = "deadbeef" if dataset == "criteo" else "never-seen"  # an unseen value: the field's bucket
    rows[1][:13] = [""] * 13  # empty values (Criteo's missing ones)
    calls = [{"row": rows}, {"row": [rows[2][:-1] + ["not-hex!"]]}, {"row": rows[:1]}]
    got, bad, after = call_exported("served", calls, allow_errors=True)
    expected = deepfm.predict("run", row=["\t".join(r) for r in rows])["probabilities"]
    np.testing.assert_allclose(got["probability"], expected, atol=1e-4)
    assert np.ptp(expected) > 0.05  # trained: the rows get different probabilities
    if dataset == "criteo":  # predict says "not 8 hex digits" in one line; the serving call fails, the server lives
        assert "InvalidArgumentError" in bad["__error__"] and "not 8 hex digits" in bad["__error__"]
    np.testing.assert_allclose(after["probability"], got["probability"][:1], atol=1e-6)


@pytest.mark.slow
def test_string_ids_go_in_and_come_out_as_strings(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    lines = [f"user{u},film{i},{rng.integers(1, 6)},{1_000_000 + 10 * u + k}"
             for u in range(30) for k, i in enumerate(rng.choice(40, 12, replace=False))]
    (tmp_path / "ratings.csv").write_text("user,item,rating,ts\n" + "\n".join(lines) + "\n")
    neumf.train(neumf.Config(epochs=1, columns="user,item,rating,ts"), data_dir=tmp_path, run_dir="run")
    result = neumf.export("run", out="served", k=3)
    assert result["signature"]["inputs"] == {"user": ["string", [None]]}
    assert result["signature"]["outputs"]["items"] == ["string", [None, 3]]
    got, unknown = call_exported("served", [{"user": ["user7", "user0"]}, {"user": ["user7", "nobody"]}],
                                 allow_errors=True)
    assert "unknown user id" in unknown["__error__"]
    _unrounded_predict(monkeypatch, neumf_model)
    for row, user in enumerate(["user7", "user0"]):
        p = neumf.predict("run", user=user, top=3)
        assert [i.decode() for i in got["items"][row]] == p["items"]
        np.testing.assert_allclose(got["scores"][row], p["scores"], atol=1e-4)
