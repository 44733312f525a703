"""The code passes the linter (ruff, configured in pyproject.toml): unused imports, undefined names, import order."""

import glob
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff not installed (it is in the test extra: pip install -e '.[test]')"
)
def test_ruff_is_clean():
    paths = ["napari_seisfm", "tests", "benchmarks", *sorted(glob.glob("docs/*.py", root_dir=REPO))]
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *paths], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"ruff check {' '.join(paths)}:\n{out.stdout[-4000:]}{out.stderr[-2000:]}"
