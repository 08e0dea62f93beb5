"""The user guides stay guides: each docs/<domain>.md is at most 12,000 characters, and every fenced `python`
block in it runs (in order, in a fresh process and an empty folder, offline on the demo data), so an example
cannot rot. The measurement history lives in docs/experiments/<domain>.md, which this does not run."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = sorted((ROOT / "docs").glob("*.md"))
LIMIT = 12_000


def python_blocks(text):
    """The fenced ```python blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_blocks_are_found():
    text = "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\nprint(x)\n```\n"
    assert python_blocks(text) == ["x = 1\n", "print(x)\n"]


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_guide_is_short(guide):
    assert len(guide.read_text()) <= LIMIT, f"{guide.name}: {len(guide.read_text())} characters; move history " \
                                            f"to docs/experiments/{guide.name}"


@pytest.mark.parametrize("guide", [g for g in GUIDES if python_blocks(g.read_text())], ids=lambda p: p.name)
def test_guide_python_examples_run(guide, tmp_path):
    code = "\n".join(python_blocks(guide.read_text()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DLSUITE_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, f"{guide.name}'s python blocks failed:\n{out.stderr[-3000:]}"
