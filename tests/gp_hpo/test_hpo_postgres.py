"""Two worker processes on one study in a local PostgreSQL server (slow; skipped without `postgres`)."""
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from gp_hpo.hpo.tuner import StudySettings, Tuner, open_study, run_workers, trial_records

pytestmark = pytest.mark.slow
SPACE = {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}


def _as_server_user(args):
    """Run a PostgreSQL tool; as root, as the `postgres` user (initdb refuses root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    tools = [shutil.which(t) for t in ("postgres", "initdb", "pg_ctl")]
    if not all(tools):
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the postgresql:// storage needs psycopg (pip install \"psycopg[binary]\")")
    if os.geteuid() == 0 and (shutil.which("runuser") is None or subprocess.run(["id", "postgres"]).returncode):
        pytest.skip("running as root without a 'postgres' user to start the server as")
    root = tempfile.mkdtemp(prefix="hpo-pg-")
    os.chmod(root, 0o777)
    data, port = os.path.join(root, "data"), _free_port()
    _as_server_user(["initdb", "-D", data, "-A", "trust", "-U", "hpo"])
    _as_server_user(["pg_ctl", "-D", data, "-w", "-l", os.path.join(root, "log"),
                     "-o", f"-k {root} -p {port} -c listen_addresses=''", "start"])
    try:
        yield f"postgresql://hpo@/postgres?host={root}&port={port}"
    finally:
        _as_server_user(["pg_ctl", "-D", data, "-m", "immediate", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(postgres_url):
    settings = StudySettings(objective="tests.gp_hpo.test_hpo_tuner:sleepy", space=SPACE, storage=postgres_url,
                             study="pg", trials=12, max_epochs=2, scheduler="asha", min_epochs=1, eta=2)
    study = open_study(settings, create=True)
    assert run_workers(settings, 2, in_process=False) == [0, 0]
    rows = trial_records(study)
    assert len(rows) == 12 and all(r["state"] in ("complete", "pruned") for r in rows)
    assert len({r["param_x"] for r in rows}) == 12 and {r["worker"] for r in rows} == {"w0", "w1"}
    assert all(len(study.trials[r["trial"]].intermediate_values) == r["epochs"] for r in rows)


def test_synchronous_successive_halving_with_two_workers(postgres_url):
    # 9 trials at 1 epoch, the best 3 retrained for 3, the best for 9: workers wait at each rung
    settings = StudySettings(objective="tests.gp_hpo.test_hpo_tuner:sleepy", space=SPACE, storage=postgres_url,
                             study="sh", trials=13, max_epochs=9, scheduler="sh", min_epochs=1, eta=3)
    tuner = Tuner(settings)
    tuner.run(2, in_process=False)
    rows = tuner.records
    assert [r["epochs"] for r in rows] == [1] * 9 + [3] * 3 + [9]
    xs = {r["trial"]: r["param_x"] for r in rows}
    assert [r["promoted_from"] for r in rows[9:12]] == sorted(range(9), key=xs.get)[:3]
    assert rows[12]["promoted_from"] == 9
    rung1_end = max(r["end_s"] for r in rows[:9])
    assert all(r["start_s"] <= rung1_end + 5 for r in rows[9:12])  # slots were taken while rung 1 ran
