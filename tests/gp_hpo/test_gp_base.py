"""The shared GP base: the standardiser and input checks by hand, and the module graph (the two
backends import the base, not each other; none of the GP modules imports TensorFlow)."""
import ast
from pathlib import Path

import numpy as np
import pytest

from common.errors import UsageError
from gp_hpo.gp_base import as_inputs, standardiser

GP_DIR = Path(__file__).resolve().parents[2] / "gp_hpo"


def test_standardiser_by_hand():
    mean, std = standardiser(np.array([[1.0, 4.0], [3.0, 4.0]]))
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(std, [1.0, 1.0])  # the constant column gets std 1, not 0
    mean, std = standardiser(np.array([[0.0], [2.0], [4.0]]))
    assert std[0] == pytest.approx(np.sqrt(8 / 3))


def test_as_inputs_shapes_and_errors():
    assert as_inputs([1.0, 2.0, 3.0]).shape == (3, 1)
    assert as_inputs([1.0, 2.0], d=2).shape == (1, 2)
    with pytest.raises(UsageError, match=r"shape \(n, 2\), got \(2, 3\)"):
        as_inputs(np.zeros((2, 3)), d=2)
    with pytest.raises(UsageError, match="NaN or infinity"):
        as_inputs([0.0, np.inf])


def _imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_backends_share_the_base_and_import_neither_each_other_nor_tensorflow():
    modules = {p.stem: _imports(p) for p in GP_DIR.glob("gp*.py")} | {"kernels": _imports(GP_DIR / "kernels.py")}
    assert "gp_hpo.gp_base" in modules["gp"] and "gp_hpo.gp_base" in modules["gp_gpytorch"]
    assert "gp_hpo.gp" not in modules["gp_gpytorch"]
    # the factory (gp_hpo.gp.make_gp) imports the GPyTorch backend; nothing under it imports gp_hpo.gp back
    for name in ("gp_base", "gp_init", "gp_gpytorch", "kernels"):
        assert "gp_hpo.gp" not in modules[name], name
    for name, imported in modules.items():
        assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "keras")}, name
