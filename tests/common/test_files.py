"""common.files: atomic writes leave either the complete new file or the old one."""
import json

import pytest

from common.files import atomic_path, write_json


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "model.keras"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".keras") and tmp != target
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["model.keras"]  # no temporary left behind


def test_atomic_directory_replaces_the_old_tree(tmp_path):
    target = tmp_path / "tree"
    (target / "old").mkdir(parents=True)
    with atomic_path(target, directory=True) as tmp:
        (tmp / "new.txt").write_text("1")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["tree"]


def test_write_json_handles_numpy_paths_and_tuples(tmp_path):
    import numpy as np

    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "p": tmp_path, "t": (1, 2)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 0.5, "p": str(tmp_path), "t": [1, 2]}
