"""common.tfds_source and the `--tfds`/`--tfds-dir` flags: offline loads through `tfds.testing.mock_data`,
a dataset that is not prepared is one line at once, and config.json records the TFDS source."""
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from common import cli, tfds_source
from common.errors import DlsuiteError, UsageError
from tests.cli_helpers import one_line, run

tfds = pytest.importorskip("tensorflow_datasets")


def test_names_in_tfds_spelling():
    assert tfds_source.dataset_name("snli") == "snli"
    assert tfds_source.dataset_name("movielens:100k-ratings") == "movielens/100k-ratings"
    assert tfds_source.dataset_name("imdb_reviews:1.0.0") == "imdb_reviews:1.0.0"  # a version stays one
    assert tfds_source.dataset_name("movielens/1m-ratings:0.1.1") == "movielens/1m-ratings:0.1.1"
    assert tfds_source.base_name("movielens/100k-ratings:0.1.1") == "movielens"
    assert tfds_source.base_name("voc:2012") == "voc"


def test_not_prepared_is_one_line_at_once(tmp_path):
    start = time.monotonic()
    with pytest.raises(DlsuiteError) as caught:
        tfds_source.load("imdb_reviews", "train", data_dir=str(tmp_path))
    assert time.monotonic() - start < 10  # a local check, never a download or a retry (measured 0.1 s)
    message = str(caught.value)
    assert "\n" not in message and type(caught.value) is DlsuiteError
    assert message == (f"TFDS dataset imdb_reviews is not prepared in {tmp_path}; run `tfds build imdb_reviews "
                       f"--data_dir {tmp_path}` on a machine with internet, or pass --tfds-dir")
    with pytest.raises(UsageError, match="TFDS has no dataset 'no_such_set'"):
        tfds_source.load("no_such_set", "train", data_dir=str(tmp_path))
    with pytest.raises(UsageError, match="--tfds imdb_reviews/nope: "):
        tfds_source.load("imdb_reviews/nope", "train", data_dir=str(tmp_path))


def test_mock_data_examples_as_numpy(tmp_path):
    with tfds.testing.mock_data(num_examples=5):
        examples = list(tfds_source.load("imdb_reviews", "train", data_dir=str(tmp_path)))
        again = list(tfds_source.load("imdb_reviews", "train", data_dir=str(tmp_path)))
        described = tfds_source.describe("imdb_reviews:plain_text", data_dir=str(tmp_path))
    assert len(examples) == 5 and sorted(examples[0]) == ["label", "text"]
    assert isinstance(examples[0]["text"], bytes) and int(examples[0]["label"]) in (0, 1)
    assert [e["text"] for e in again] == [e["text"] for e in examples]  # the stored order, every time
    assert described["tfds"] == "imdb_reviews/plain_text" and described["version"] == "1.0.0"


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(UsageError, match=r'pip install "dlsuite\[tfds\]"'):
        tfds_source.load("imdb_reviews", "train")


def test_import_loads_no_tensorflow():
    code = "import sys, common.tfds_source; assert not {'tensorflow', 'tensorflow_datasets'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@dataclass
class _Config(cli.TrainConfig):
    epochs: int = 1


def _count(ctx):
    """A command that reads the chosen source: the TFDS train split's size, and writes a run."""
    if ctx.tfds is None:
        return {"source": "demo" if ctx.demo else "dir"}
    examples = list(ctx.tfds_examples("train"))
    ctx.run()
    return {"examples": len(examples), "tfds": ctx.tfds["name"]}


_SPEC = cli.Spec("toy.tfds", "reads TFDS", _Config,
                 {"train": cli.Command(_count, "count", trains=True), "evaluate": cli.Command(_count, "count")},
                 tfds={"imdb_reviews": "IMDb reviews"})


def test_cli_tfds_flags_and_config_record(tmp_path, capsys):
    with tfds.testing.mock_data(num_examples=7):
        code, out, err = run(_SPEC.main, ["train", "--tfds", "imdb_reviews", "--tfds-dir", tmp_path / "tfds",
                                          "--run-dir", "r"], capsys)
        assert code == 0, err
        assert out == {"examples": 7, "tfds": "imdb_reviews", "run_dir": "r"}
        data = json.loads((tmp_path / "r" / "config.json").read_text())["data"]
        assert data == {"source": "tfds", "tfds": "imdb_reviews", "version": "1.0.0", "splits": [],
                        "data_dir": str(tmp_path / "tfds"), "read": ["train"]}
        code, out, err = run(_SPEC.main, ["evaluate", "--run-dir", "r"], capsys)  # the run's own source
        assert code == 0 and out == {"examples": 7, "tfds": "imdb_reviews"} and err == ""
    with pytest.raises(SystemExit) as exited:
        _SPEC.main(["train", "--tfds", "mnist"])
    assert exited.value.code == 2
    one_line(capsys.readouterr().err, "argument --tfds: reads imdb_reviews, got 'mnist'")
    for argv, needles in [(["--tfds", "imdb_reviews", "--demo"], ("--demo and --tfds name two data sources",)),
                          (["--tfds-dir", "x"], ("pass --tfds NAME with it",))]:
        code, _, err = run(_SPEC.main, ["train", *argv, "--run-dir", "bad"], capsys)
        assert code == 2
        one_line(err, *needles)
    code, _, err = run(_SPEC.main, ["train", "--tfds", "imdb_reviews", "--tfds-dir", tmp_path / "empty",
                                    "--run-dir", "bad"], capsys)
    assert code == 1 and not (tmp_path / "bad").exists()
    one_line(err, f"not prepared in {tmp_path / 'empty'}", "tfds build imdb_reviews --data_dir")
    with pytest.raises(UsageError, match="--tfds: reads imdb_reviews"):
        _SPEC.api("train")(tfds="snli")
