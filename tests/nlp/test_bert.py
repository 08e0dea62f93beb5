"""nlp.bert, the command: pretraining on the demo (learns, 2 replicas = 1, resume, evaluate, encode), bad input;
real WikiText-2 (slow). The data and the model have their own tests (test_bert_data.py, test_bert_model.py)."""
import json
from pathlib import Path

import numpy as np
import pytest

from nlp import bert
from tests.cli_helpers import one_replica_vs_two, run, tree_digest


def test_pretrain_two_replicas_match_one_and_resume(capsys):
    single, mirrored = one_replica_vs_two(bert.main, ["--demo", "--epochs", 1], capsys, command="pretrain")
    for key in ("mlm_loss", "nsp_loss", "test_mlm_loss", "test_nsp_loss"):
        assert mirrored[key] == pytest.approx(single[key], rel=2e-3, abs=2e-3)
    # an argmax flips on float rounding: measured 0.0039 apart over ~6,000 masked positions
    assert mirrored["mlm_accuracy"] == pytest.approx(single["mlm_accuracy"], abs=1e-2)
    assert single["trained_on"] == "train"
    code, resumed, err = run(bert.main, ["pretrain", "--resume", "--run-dir", "mirrored", "--epochs", 2], capsys)
    assert code == 0, err
    assert [m["epoch"] for m in json.loads(Path("mirrored/metrics.json").read_text())] == [1, 2]
    assert resumed["vocabulary_size"] == single["vocabulary_size"]  # the run's vocab.txt, not a new one


def test_pretrain_demo_learns_and_the_run_is_usable(capsys):
    code, single, err = run(bert.main, ["pretrain", "--demo", "--run-dir", "single"], capsys)
    assert code == 0, err
    # the demo's sentences follow phrase patterns: masked words are learned within its 4 epochs (NSP is
    # not, there: it starts to learn after about 10 epochs on WikiText, see the slow test)
    assert single["test_mlm_accuracy"] > 2 * single["test_mlm_baseline_accuracy"]
    assert 0 <= single["test_nsp_accuracy"] <= 1 and single["test_pairs"] > 300

    code, evaluated, err = run(bert.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 0, err
    assert evaluated["nsp_accuracy"] == pytest.approx(single["test_nsp_accuracy"], abs=1e-4)
    assert evaluated["mlm_baseline_accuracy"] == single["test_mlm_baseline_accuracy"]

    code, encoded, err = run(bert.main, ["encode", "--run-dir", "single", "the band played", "a loud song"], capsys)
    assert code == 0, err
    assert encoded["tokens"][0] == "[CLS]" and encoded["tokens"].count("[SEP]") == 2
    n = len(encoded["tokens"])
    assert encoded["sequence_output_shape"] == [1, n, 128] and len(encoded["cls"]) == 128
    for preset in (["--preset", "single/preset"], ["--preset=single/preset"]):
        code, from_preset, err = run(bert.main, ["encode", *preset, "the band played", "a loud song"], capsys)
        assert code == 0, err
        assert from_preset["cls"] == encoded["cls"]

    backbone, tokenizer, seq_len = bert.load_backbone(run_dir="single")
    assert seq_len == 32 and tokenizer.vocabulary_size() == single["vocabulary_size"]

    epochs = bert.DEMO["epochs"]
    # another sequence length or vocabulary than the checkpoint's: one line, before anything is written
    before = tree_digest("single")
    code, _, err = run(bert.main, ["pretrain", "--resume", "--run-dir", "single", "--epochs", epochs + 1,
                                   "--max-len", 48], capsys)
    assert code == 2 and "single was trained with --max-len 32; --resume keeps the run's settings" in err
    assert len(err.strip().splitlines()) == 1 and tree_digest("single") == before
    vocab = Path("single") / "vocab.txt"
    vocab.write_text(vocab.read_text() + "extra\n")
    code, _, err = run(bert.main, ["evaluate", "--run-dir", "single"], capsys)
    assert code == 1 and f"a vocabulary of {single['vocabulary_size']}" in err and len(err.strip().splitlines()) == 1
    # a lost vocab.txt is never silently relearned (that would mismatch the checkpoint's embedding rows)
    vocab.unlink()
    for argv in (["pretrain", "--resume", "--run-dir", "single", "--epochs", epochs + 1],
                 ["evaluate", "--run-dir", "single"]):
        code, _, err = run(bert.main, argv, capsys)
        assert code == 1 and f"{vocab} is missing" in err and len(err.strip().splitlines()) == 1, err
    assert [m["epoch"] for m in json.loads(Path("single/metrics.json").read_text())] == list(range(1, epochs + 1))


def test_pretrain_writes_vocab_txt_and_preset_on_the_chief_only(monkeypatch, capsys):
    import common.cli

    monkeypatch.setattr(common.cli, "is_chief", lambda strategy: False)  # this process: a worker, not the chief
    code, result, err = run(bert.main, ["pretrain", "--demo", "--epochs", 1, "--num-layers", 1, "--hidden-dim", 32,
                                        "--intermediate-dim", 32, "--vocab-size", 100, "--max-len", 16,
                                        "--run-dir", "worker"], capsys)
    assert code == 0, err
    assert not Path("worker/vocab.txt").exists() and not Path("worker/config.json").exists()  # was written
    assert not Path("worker", bert.PRESET_DIR).exists()  # the preset too


def test_pretrain_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "wiki.valid.tokens").write_text(" = Heading = \n")
    (tmp_path / "wiki.test.tokens").write_text(" a . b . \n")
    code, _, err = run(bert.main, ["pretrain", "--data-dir", tmp_path], capsys)
    assert code == 1 and "holds no paragraph of two or more sentences" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(bert.main, ["pretrain", "--demo", "--num-heads", 3], capsys)
    assert code == 2 and "--num-heads 3 must divide --hidden-dim 128" in err
    for preset in (["--preset", tmp_path], [f"--preset={tmp_path}"]):  # no run needed, either spelling
        code, _, err = run(bert.main, ["encode", *preset, "text"], capsys)
        assert code == 1 and "not a keras-hub preset directory" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error, through the spine's parser
        bert.main(["encode", "text", "--preset"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --preset: expected one argument" in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "config.json").write_text("{}")
    code, _, err = run(bert.main, ["encode", f"--run-dir={tmp_path}", "--preset", tmp_path, "text"], capsys)
    assert code == 2 and "--preset DIR or from a run (--run-dir), not both" in err, err


@pytest.mark.slow
def test_real_wikitext_quality(shared_data, capsys):
    """Trained on the real valid split (default recipe, 72 epochs: 11.5 minutes on a fast 2-core machine, about
    twice that on a slow one): MLM accuracy on test 0.249, 0.239 and 0.251 for seeds 0, 1 and 2 against the most-
    frequent-token baseline's 0.053 (the issue asks for 2x; 4x is checked), NSP 0.704, 0.693 and 0.705 on test
    (the issue's 0.70; see docs/experiments/nlp.md), 0.86-0.87 on the last epoch's training pairs."""
    code, result, err = run(bert.main, ["pretrain", "--data-dir", shared_data / "wikitext-2", "--run-dir", "wt2"],
                            capsys)
    assert code == 0, err
    assert result["trained_on"] == "valid"
    assert result["test_nsp_accuracy"] >= 0.68 and result["nsp_accuracy"] >= 0.80
    assert result["test_mlm_accuracy"] >= 4 * result["test_mlm_baseline_accuracy"]


def test_the_python_api_pretrains_evaluates_encodes_and_loads():
    from common.errors import UsageError

    tiny = bert.Config(epochs=1, num_layers=1, hidden_dim=32, intermediate_dim=32, vocab_size=100, max_len=16)
    trained = bert.pretrain(tiny, demo=True, run_dir="api")
    assert trained["run_dir"] == "api"
    evaluated = bert.evaluate("api")
    assert evaluated["nsp_accuracy"] == pytest.approx(trained["test_nsp_accuracy"], abs=1e-4)
    encoded = bert.encode("api", texts=["the band played", "a loud song"])
    assert encoded["tokens"][0] == "[CLS]" and len(encoded["cls"]) == 32
    assert bert.encode(texts=["the band played", "a loud song"], preset="api/preset")["cls"] == encoded["cls"]
    model = bert.load("api")  # the pretrainer: its backbone gives encode's [CLS] vector
    tokenizer = bert.make_tokenizer(bert._load_vocabulary("api"))
    pieces = [bert.tokenize(tokenizer, [t]) for t in ("the band played", "a loud song")]
    x = bert.pack_pairs(tokenizer, pieces[0], pieces[1], len(encoded["tokens"]))
    cls = model.backbone(x)["sequence_output"][0, 0].numpy()
    np.testing.assert_allclose(cls, encoded["cls"], atol=1e-4)
    with pytest.raises(UsageError, match="--num-heads 3 must divide --hidden-dim 128"):
        bert.pretrain(bert.Config(num_heads=3), demo=True)
    with pytest.raises(UsageError, match="unknown option 'text'"):
        bert.encode("api", text="a crane")
