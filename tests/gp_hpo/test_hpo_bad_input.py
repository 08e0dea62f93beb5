"""HPO's bad-input matrix: bad flags, study directories that are files or cannot be written, flags that
do not match an existing study, damaged study files. Each is one line on stderr (exit 2 for usage, 1 for a
failed run), never a traceback, and a failing command leaves every file of an existing study byte-identical."""
import hashlib
import json
import shutil

import optuna
import pytest

from gp_hpo.hpo import main

HERE = __name__
SPACE = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}


def counting(config, report):
    """error = x + 1 / epoch."""
    for epoch in range(1, config["max_epochs"] + 1):
        report(epoch, config["x"] + 1 / epoch)


counting.space = SPACE


def other(config, report):
    counting(config, report)


other.space = SPACE


def sleepy(config, report):
    """An objective without a default space."""
    counting(config, report)


def cli(capsys, *args):
    code = main(["run", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    lines = err.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in err


def _space_file(tmp_path, spec=None):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(SPACE if spec is None else spec))
    return path


# ---------------------------------------------------------------- flags of a new study

@pytest.mark.parametrize("flags,message", [
    (["--objective", "no_such_pkg.mod:fn"], "--objective no_such_pkg.mod:fn: cannot import no_such_pkg.mod"),
    (["--objective", "gp_hpo.hpo.objectives:nope"], "has no function 'nope'"),
    (["--objective", "gp_hpo.hpo.objectives"], "expected package.module:function"),
    (["--objective", f"{HERE}:sleepy"], "has no default space; pass --space FILE.json"),
    (["--objective", f"{HERE}:sleepy", "--space", "EMPTY"], "the configuration space is empty"),
    (["--objective", f"{HERE}:sleepy", "--space", "MISSING"], "missing.json: cannot read (No such file"),
    (["--objective", f"{HERE}:sleepy", "--space", "NOT_JSON"],
     "not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    (["--objective", f"{HERE}:sleepy", "--space", "BINARY"], "not valid JSON (not UTF-8 text)"),
    (["--min-epochs", "5", "--max-epochs", "3"], "--min-epochs (5) must not exceed --max-epochs (3)"),
    (["--scheduler", "sh", "--trials", "12", "--max-epochs", "27"],
     "--trials 12 fills at most the first rung of a round (27 configurations; rungs 1, 3, 9, 27 epochs with eta 3)"),
    (["--scheduler", "sh", "--trials", "9"], "pass --trials 13 (one full round)"),
    (["--trials", "0"], "--trials must be at least 1, got 0"),
    (["--eta", "1"], "--eta must be at least 2, got 1"),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--max-wall-seconds", "-1"], "--max-wall-seconds must be non-negative, got -1.0"),
    (["--heartbeat-seconds", "5", "--grace-seconds", "2"], "--grace-seconds must exceed --heartbeat-seconds"),
    (["--storage", "A_FOLDER"], "is a folder; name a journal file (or a database URL)"),
])
def test_bad_input_is_one_line(tmp_path, capsys, flags, message):
    files = {"EMPTY": _space_file(tmp_path, {}), "MISSING": tmp_path / "missing.json",
             "NOT_JSON": tmp_path / "bad.json", "BINARY": tmp_path / "binary.json", "A_FOLDER": tmp_path}
    files["NOT_JSON"].write_text("{x: 1")
    files["BINARY"].write_bytes(b"\xff\xfe\x00\x81")
    flags = [str(files.get(f, f)) for f in flags]
    code, _, err = cli(capsys, "--objective", f"{HERE}:counting", *flags, "--study-dir", tmp_path / "s")
    assert code == 2 and message in err and one_line(err), err
    assert not (tmp_path / "s").exists()  # nothing created for a refused study


@pytest.mark.parametrize("flags,message", [
    (["--searcher", "nope"], "argument --searcher: invalid choice: 'nope'"),
    (["--trials", "many"], "argument --trials: invalid int value: 'many'"),
    (["--trails", "3"], "unrecognized arguments: --trails 3"),
])
def test_bad_flags_are_usage_errors(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        main(["run", *flags, "--study-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and one_line(err), err


def test_a_storage_that_cannot_be_opened_is_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "--objective", f"{HERE}:counting", "--storage", "nosuchdb://host/x",
                       "--study-dir", tmp_path / "s")
    assert code == 1 and "--storage nosuchdb://host/x: cannot open" in err and one_line(err), err


# ---------------------------------------------------------------- the study directory itself

def test_a_study_dir_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "study.txt"
    path.write_text("mine")
    code, _, err = cli(capsys, "--objective", f"{HERE}:counting", "--trials", 2, "--study-dir", path)
    assert code == 1 and f"{path} is a file, not a folder" in err and one_line(err), err
    code, _, err = cli(capsys, "--resume", "--study-dir", path)
    assert code == 2 and str(path) in err and one_line(err), err
    assert path.read_text() == "mine"


@pytest.mark.parametrize("where", ["/proc/dlsuite-hpo-study", "/proc"])
def test_a_study_dir_that_cannot_be_written(capsys, where):
    """/proc/x cannot be created and /proc cannot be written into, even by root."""
    code, _, err = cli(capsys, "--objective", f"{HERE}:counting", "--trials", 2, "--study-dir", where)
    assert code == 1 and f"{where} cannot be written" in err and one_line(err), err


# ---------------------------------------------------------------- an existing study

FLAGS = ["--objective", f"{HERE}:counting", "--trials", "3", "--max-epochs", "2", "--heartbeat-seconds", "0.2",
         "--grace-seconds", "1"]


@pytest.fixture(scope="module")
def made_study(tmp_path_factory):
    """A finished 3-trial study, made once; each test works on its own copy."""
    d = tmp_path_factory.mktemp("made") / "study"
    assert main(["run", *FLAGS, "--study-dir", str(d)]) == 0
    return d


@pytest.fixture
def study(made_study, tmp_path):
    d = tmp_path / "study"
    shutil.copytree(made_study, d)
    return d


def snapshot(d):
    """Every file and folder under `d`: relative path -> SHA-256 of its bytes (None for a folder)."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
            for p in sorted(d.rglob("*"))}


def refused(capsys, d, *flags):
    """Run `flags` on study `d`; assert it changed nothing in `d`; return (exit code, stderr)."""
    before = snapshot(d)
    code, out, err = cli(capsys, *flags, "--study-dir", d)
    assert snapshot(d) == before, f"{flags} changed {d}"
    assert one_line(err) and not out, err
    return code, err


def test_other_flags_on_an_existing_study_change_nothing_and_resume_still_works(study, capsys):
    """The issue's case: a plain run with other flags is refused, and the --resume it suggests works."""
    code, err = refused(capsys, study, *FLAGS[:-4], "--max-epochs", "3")
    assert code == 2 and "--resume" in err
    code, out, err = cli(capsys, "--resume", "--study-dir", study, "--trials", 4)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["complete_trials"] == 4 and summary["total_epochs"] == 8
    assert json.loads((study / "config.json").read_text())["max_epochs"] == 2


@pytest.mark.parametrize("flag,value", [
    ("--max-epochs", "3"), ("--min-epochs", "2"), ("--eta", "2"), ("--seed", "1"), ("--searcher", "bo"),
    ("--scheduler", "asha"), ("--objective", f"{HERE}:other"), ("--study", "another"), ("--storage", "OTHER"),
    ("--space", "SPACE"),
])
def test_resume_with_a_flag_that_defines_the_study_changes_nothing(study, tmp_path, capsys, flag, value):
    value = {"OTHER": str(tmp_path / "other.log"), "SPACE": str(_space_file(tmp_path))}.get(value, value)
    code, err = refused(capsys, study, "--resume", flag, value)
    assert code == 2 and "--resume keeps the" in err and flag in err, err


def test_resume_takes_new_per_worker_flags(study, capsys):
    code, out, err = cli(capsys, "--resume", "--study-dir", study, "--trials", 5, "--max-retry", 1, "--workers", 1)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["complete_trials"] == 5


def _foreign_study(d):
    (d / "journal.log").unlink()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(d / "journal.log")))
    optuna.create_study(storage=storage, study_name="hpo")


@pytest.mark.parametrize("damage,code,message", [
    (lambda d: (d / "config.json").write_text("{not json"), 1, "config.json is corrupt"),
    (lambda d: (d / "config.json").write_text("[1, 2]"), 1, "config.json is corrupt (not a JSON object)"),
    (lambda d: (d / "config.json").write_bytes(b"\x00\xff\xfe"), 1, "config.json is corrupt"),
    (lambda d: (d / "config.json").unlink(), 2, "config.json"),
    (lambda d: (d / "journal.log").unlink(), 2, "holds no journal.log; pass the --study-dir of an earlier run"),
    (lambda d: (d / "journal.log").write_text(""), 2, "holds no study 'hpo'"),
    (lambda d: (d / "journal.log").write_bytes(b"garbage\n" + (d / "journal.log").read_bytes()), 1,
     "journal.log: the study journal is damaged"),
    (lambda d: (d / "journal.log").write_bytes(b"\x00\xff" * 40 + b"\n"), 1, "the study journal is damaged"),
    (_foreign_study, 2, "was not made by gp_hpo.hpo (no settings)"),
    (lambda d: (d / "config.json").write_text(json.dumps(
        {**json.loads((d / "config.json").read_text()), "objective": "gone_pkg.mod:fn"})), 2,
     "cannot import gone_pkg.mod"),
])
def test_resume_on_a_damaged_study_is_one_line_and_changes_nothing(study, capsys, damage, code, message):
    damage(study)
    got, err = refused(capsys, study, "--resume")
    assert got == code and message in err, err


def test_joining_a_damaged_journal_changes_nothing(study, capsys):
    (study / "journal.log").write_bytes(b"garbage\n" + (study / "journal.log").read_bytes())
    code, err = refused(capsys, study, *FLAGS)
    assert code in (1, 2) and ("the study journal is damaged" in err or "--resume" in err), err


@pytest.mark.parametrize("change,message", [
    (lambda f: f.write_text(json.dumps({"x": {"type": "uniform", "low": 0.0, "high": 2.0}})),
     "was made with other settings (space)"),
    (lambda f: f.unlink(), "space.json: cannot read (No such file"),
])
def test_resume_after_the_space_file_changed_changes_nothing(tmp_path, capsys, change, message):
    space, d = _space_file(tmp_path), tmp_path / "s"
    assert cli(capsys, "--objective", f"{HERE}:sleepy", "--space", space, "--trials", 2, "--max-epochs", 1,
               "--study-dir", d)[0] == 0
    change(space)
    code, err = refused(capsys, d, "--resume")
    assert code == 2 and message in err, err
