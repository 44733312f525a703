"""Options and files that used to run unbounded, end in internal errors or be silently accepted (issue 23:
D8, D11, the silent accepts and the messages). Each is one `seisfm: error:` line with exit 2, before any work."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from napari_seisfm.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(capsys, *argv, match: str) -> str:
    assert cli([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [
        ln
        for ln in err.replace("\r", "\n").splitlines()
        if ln.strip() and "/s]" not in ln and "step]" not in ln and not ln.startswith("seisfm: warning")
    ]
    assert len(lines) == 1 and lines[0].startswith("seisfm: error:") and match in lines[0], err
    assert "usage:" not in err and "internal error" not in err
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("bounds")
    assert cli(["synth", str(d / "c.npy"), "--size", "32"]) == 0
    assert cli(["embed", str(d / "c.npy"), "--out", str(d / "f.zarr"), "--stride", "4"]) == 0
    return d


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a wavediff model is loaded: a refused option must be refused before the work."""
    from napari_seisfm.wavediff import model

    def load(*a, **k):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(model, "load", load)


# ------------------------------------------------------------------ D8: bounds before work


def test_synth_refuses_a_cube_that_cannot_fit_before_allocating(tmp_path):
    """In a subprocess capped at 4 GiB of address space: before, 40000^3 ran for a minute and took 10 GB."""
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
        "from napari_seisfm.cli import main; "
        f"sys.exit(main(['synth', {str(tmp_path / 's.npy')!r}, '--size', '40000,40000,40000']))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("seisfm: error: --size 40000,40000,40000:") and "memory" in r.stderr
    assert r.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


def test_demo_size_and_clicks(tmp_path, capsys):
    one_line_error(capsys, "demo", "--out", tmp_path / "d", "--size", "100000", match="memory")
    for clicks in ("0", "-1"):
        one_line_error(capsys, "demo", "--out", tmp_path / "d", "--size", "32", "--clicks", clicks, match="--clicks")
    one_line_error(capsys, "demo", "--out", tmp_path / "d", "--size", "32", "--seed", "-1", match="--seed")


@pytest.mark.parametrize(
    "argv, match",
    [
        (["simulate", "--n", "0", "--out", "{t}/w"], "--n 0"),
        (["simulate", "--n", "-1", "--out", "{t}/w"], "--n -1"),
        (["simulate", "--dx", "0", "--out", "{t}/w"], "--dx 0"),
        (["simulate", "--dt", "nan", "--out", "{t}/w"], "--dt nan"),
        (["sample", "--n", "0", "--out", "{t}/s.npz"], "--n 0"),
        (["sample", "--out", "/dev/null/x"], "/dev/null is a file, not a folder"),
        (["sample", "--out", "{t}/s.npz", "--plot", "/dev/null/x.png"], "/dev/null is a file"),
        (["residual", "--n", "-1"], "--n -1"),
        (["residual", "--points", "0"], "--points 0"),
        (["residual", "--points", "1"], "--points 1"),
        (["residual", "--csv", "/dev/null/c.csv"], "/dev/null is a file"),
        (["invert", "--steps", "0"], "--steps 0"),
        (["invert", "--candidates", "-3"], "--candidates -3"),
        (["train", "--data", "{t}", "--out", "{t}/r", "--batch-size", "0"], "--batch-size 0"),
        (["train", "--data", "{t}", "--out", "{t}/r", "--minutes", "-1"], "--minutes -1"),
        (["sample", "--seed", "-1", "--out", "{t}/s.npz"], "--seed -1"),
    ],
)
def test_wavediff_options_are_checked_before_work(tmp_path, capsys, no_work, argv, match):
    one_line_error(capsys, "wavediff", *(a.format(t=tmp_path) for a in argv), match=match)


def test_residual_points_beyond_the_models_steps(capsys):
    one_line_error(capsys, "wavediff", "residual", "--points", "5000", match="diffusion steps")


# ------------------------------------------------------------------ D11: internal errors that are user errors


def test_a_text_file_as_checkpoint(store, tmp_path, capsys):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    one_line_error(
        capsys,
        "embed",
        store / "c.npy",
        "--out",
        tmp_path / "e.zarr",
        "--model",
        "seisfm-micro-2.5d",
        "--checkpoint",
        passwd,
        match="not a PyTorch checkpoint",
    )
    one_line_error(
        capsys,
        "pretrain",
        "--synthetic",
        "1",
        "--steps",
        "1",
        "--init",
        passwd,
        "--out",
        tmp_path / "p",
        match="not a PyTorch checkpoint",
    )


def test_cluster_seed(store, tmp_path, capsys):
    one_line_error(
        capsys, "cluster", store / "f.zarr", "--k", "3", "--seed", "-1", "--out", tmp_path / "k.npy", match="--seed -1"
    )


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A micro WaveDiffusion run stopped after its first step, to be resumed."""
    d = tmp_path_factory.mktemp("wdrun")
    assert cli(["wavediff", "simulate", "--setup", "micro", "--n", "4", "--out", str(d / "pairs"), "--json"]) == 0
    assert (
        cli(
            [
                "wavediff",
                "train",
                "--setup",
                "micro",
                "--size",
                "micro",
                "--data",
                str(d / "pairs"),
                "--out",
                str(d / "run"),
                "--stage1-steps",
                "2",
                "--stage2-steps",
                "1",
                "--batch-size",
                "2",
                "--minutes",
                "0",
                "--json",
            ]
        )
        == 0
    )
    assert (d / "run" / "optimizer.pt").exists()
    return d


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/seisfm-pwned-23",))


@pytest.mark.parametrize("what", ["pickled code", "plain pickle", "text", "wrong structure", "damaged state"])
def test_resume_with_a_malicious_or_damaged_run_folder(run_folder, tmp_path, capsys, what):
    import torch

    run = tmp_path / "run"
    shutil.copytree(run_folder / "run", run)
    marker = Path("/tmp/seisfm-pwned-23")
    marker.unlink(missing_ok=True)
    if what == "pickled code":
        torch.save({"stage": 1, "opt": _Payload()}, run / "optimizer.pt")
        match = "refused: it holds Python objects other than tensors (Unsupported global: GLOBAL posix.system)"
    elif what == "plain pickle":
        (run / "optimizer.pt").write_bytes(pickle.dumps({"stage": 1, "opt": _Payload()}))
        match = "not an optimiser state"
    elif what == "text":
        (run / "optimizer.pt").write_text("root:x:0:0:root:/root:/bin/bash\n")
        match = "not an optimiser state"
    elif what == "wrong structure":
        torch.save({"stage": 1, "opt": {"state": {0: "x"}, "param_groups": [{"params": [0]}]}}, run / "optimizer.pt")
        match = "does not fit this model"
    else:
        (run / "state.json").write_text('{"stage": "one"}')
        match = "damaged run state"
    one_line_error(
        capsys,
        "wavediff",
        "train",
        "--setup",
        "micro",
        "--size",
        "micro",
        "--data",
        run_folder / "pairs",
        "--out",
        run,
        "--batch-size",
        "2",
        "--resume",
        match=match,
    )
    assert not marker.exists()  # never executed


# ------------------------------------------------------------------ silent accepts and messages


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_threshold_must_be_finite(store, tmp_path, capsys, value):
    one_line_error(
        capsys,
        "search",
        store / "f.zarr",
        "--pos",
        "8,8,8",
        "--coords",
        "cube",
        "--out",
        tmp_path / "m.npy",
        f"--threshold={value}",
        "--mask",
        tmp_path / "k.npy",
        match="--threshold",
    )
    assert not (tmp_path / "m.npy").exists()


def test_embed_out_must_be_a_store_name(store, tmp_path, capsys):
    one_line_error(
        capsys,
        "embed",
        store / "c.npy",
        "--out",
        tmp_path / "x.npy",
        "--model",
        "attributes",
        match="a feature store is a .zarr folder",
    )
    assert not (tmp_path / "x.npy").exists()


def test_a_stride_longer_than_the_cube_says_so(store, tmp_path, capsys):
    for stride in ("1000000", "99999999999999999999999", "4,4,33"):
        err = one_line_error(
            capsys, "embed", store / "c.npy", "--out", tmp_path / "s.zarr", "--stride", stride, match="is longer than"
        )
        assert "--pca 0" not in err  # it used to blame the PCA
    assert (
        cli(["embed", str(store / "c.npy"), "--out", str(tmp_path / "s.zarr"), "--stride", "4,4,32"]) == 0
    )  # one point in time is fine


def test_negative_origin_reaches_the_command(store, tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "a.npy", np.ones((8, 8, 8, 4), np.float32))
    one_line_error(
        capsys,
        "features",
        "import",
        tmp_path / "a.npy",
        "--cube",
        store / "c.npy",
        "--out",
        tmp_path / "s.zarr",
        "--origin",
        "-1,0,0",
        match="--origin '-1,0,0'",
    )


@pytest.mark.parametrize("value", ["1e308", "nan", "-1"])
def test_segment_smoothing_bounds(store, tmp_path, capsys, value):
    (tmp_path / "l.csv").write_text("il,xl,t,class\n2,2,4,1\n20,20,24,2\n")
    one_line_error(
        capsys,
        "segment",
        store / "f.zarr",
        "--labels",
        tmp_path / "l.csv",
        "--coords",
        "cube",
        "--out",
        tmp_path / "s.npy",
        f"--smooth={value}",
        match="--smooth",
    )
