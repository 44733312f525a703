"""`pip install napari-seisfm` (the core, no extra) runs the headless commands; a command that needs an extra
says so in one line naming it (napari_seisfm/extras.py, issue 25 item 4).

Each command runs in a fresh process in which every module the extras bring cannot be imported (a meta-path
blocker), so this holds in the full development environment too; .ci/run also runs it in a second venv with
only the core installed, where the blocker changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_seisfm.extras import EXTRAS

pytestmark = pytest.mark.headless

BLOCKED = sorted({m for modules in EXTRAS.values() for m in modules} | {"PyQt6", "PyQt5", "PySide6", "vispy", "dask"})
PRELUDE = textwrap.dedent(f"""
    import importlib.abc, sys
    BLOCKED = {BLOCKED!r}

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    from napari_seisfm.cli import main
    code = main(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    sys.exit(code)
""")


def seisfm(*args, cwd):
    """`seisfm ARGS` without the extras: (exit code, stdout, stderr)."""
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(cwd)},
    )
    return out.returncode, out.stdout, out.stderr


def ok(*args, cwd) -> str:
    code, out, err = seisfm(*args, cwd=cwd)
    assert code == 0, f"seisfm {' '.join(map(str, args))}: exit {code}\n{err[-2000:]}"
    return out


def test_the_blocker_blocks(tmp_path):
    script = PRELUDE.replace("from napari_seisfm.cli import main", "import torch")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0 and "No module named 'torch'" in out.stderr, out.stderr[-500:]


def test_core_commands_run_without_extras(tmp_path):
    """synth, info, embed (attributes), search, segment (linear, forest, knn), cluster, library, features
    export/import (.npy, .h5), check and convert, end to end on a 32^3 synthetic survey."""
    ok("synth", "s.sgy", "--size", "32", "--seed", "3", cwd=tmp_path)
    info = json.loads(ok("info", "s.sgy", "--json", cwd=tmp_path))
    assert info["geometry"]["shape"] == [32, 32, 32], info
    il0, xl0 = info["geometry"]["ilines"][0], info["geometry"]["xlines"][0]
    assert "model attributes" in ok("embed", "s.sgy", "--out", "f.zarr", cwd=tmp_path)
    assert "sound, complete" in ok("check", "f.zarr", cwd=tmp_path)

    ok("search", "f.zarr", "--pos", f"{il0 + 10},{xl0 + 10},40", "--out", "map.npy", cwd=tmp_path)
    score = np.load(tmp_path / "map.npy")
    assert score.shape == (8, 8, 8) and np.isfinite(score).all()

    (tmp_path / "labels.csv").write_text(
        f"{il0 + 5},{xl0 + 5},20,1\n{il0 + 20},{xl0 + 20},100,2\n{il0 + 10},{xl0 + 25},60,2\n{il0 + 25},{xl0 + 2},30,1\n"
    )
    for method in ("linear", "forest", "knn"):
        ok("segment", "f.zarr", "--labels", "labels.csv", "--method", method, "--k", "3", "--out", f"{method}.npy", cwd=tmp_path)
        classes = np.load(tmp_path / f"{method}.npy")
        assert classes.shape == (8, 8, 8) and set(np.unique(classes)) <= {1, 2}, method

    ok("cluster", "f.zarr", "--k", "3", "--out", "facies.npy", cwd=tmp_path)
    assert set(np.unique(np.load(tmp_path / "facies.npy"))) <= {1, 2, 3}

    ok("library", "add", "f.zarr", "--library", "lib", cwd=tmp_path)
    found = ok("library", "search", "--library", "lib", "--from", "f.zarr", "--pos", f"{il0 + 10},{xl0 + 10},40", cwd=tmp_path)
    assert "f.zarr" in found

    for suffix in (".npy", ".h5"):
        ok("features", "export", "f.zarr", f"v{suffix}", cwd=tmp_path)
        ok("features", "import", f"v{suffix}", "--cube", "s.sgy", "--out", f"back{suffix}.zarr", cwd=tmp_path)
    assert np.load(tmp_path / "v.npy").shape == (8, 8, 8, 32)

    ok("convert", "s.sgy", "s.sgz", cwd=tmp_path)
    assert json.loads(ok("info", "s.sgz", "--json", cwd=tmp_path))["geometry"]["shape"] == [32, 32, 32]


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A 32^3 synthetic survey, its attribute store and two labelled points (made without the extras)."""
    d = tmp_path_factory.mktemp("survey")
    ok("synth", "s.sgy", "--size", "32", cwd=d)
    ok("embed", "s.sgy", "--out", "f.zarr", cwd=d)
    info = json.loads(ok("info", "s.sgy", "--json", cwd=d))
    il0, xl0 = info["geometry"]["ilines"][0], info["geometry"]["xlines"][0]
    (d / "labels.csv").write_text(
        f"{il0},{xl0},0,1\n{il0 + 4},{xl0},8,1\n{il0 + 16},{xl0 + 16},60,2\n{il0 + 20},{xl0 + 16},60,2\n"
    )
    return d


@pytest.mark.parametrize(
    "args, extra",
    [
        (["pretrain", "s.sgy", "--out", "m"], "torch"),
        (["wavediff", "simulate", "--out", "w"], "torch"),
        (["codecs", "s.sgy"], "codecs"),
        (["demo", "--out", "d"], "plots"),
        (["embed", "s.sgy", "--model", "seisfm-micro-2.5d", "--out", "g.zarr"], "torch"),
        (["segment", "f.zarr", "--labels", "labels.csv", "--method", "conv", "--out", "c.npy"], "torch"),
    ],
)
def test_a_command_that_needs_a_missing_extra_names_it_in_one_line(survey, args, extra):
    code, out, err = seisfm(*args, cwd=survey)
    assert code == 2, (code, err)
    said = [line for line in err.splitlines() if line.startswith("seisfm")]  # progress bars aside
    assert len(said) == 1 and "Traceback" not in err, err
    assert said[0].startswith("seisfm: error: ") and f"[{extra}] extra" in said[0], err
    assert said[0].endswith(f"pip install 'napari-seisfm[{extra}]'"), err


def test_files_marked_headless_import_no_extra_at_module_level():
    """What .ci/run's core-only venv collects: a module-level import of an extra's module would fail there."""
    import ast
    from pathlib import Path

    bad = []
    files = [p for p in sorted(Path(__file__).parent.glob("test_*.py")) if "pytest.mark.headless" in p.read_text()]
    assert len(files) > 10
    for path in files:
        for node in ast.parse(path.read_text()).body:
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            bad += [
                f"{path.name}:{node.lineno} {n}"
                for n in names
                if n.split(".")[0] in BLOCKED or n.startswith("napari_seisfm.plugin")
            ]
    assert not bad, bad
