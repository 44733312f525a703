"""`seisfm wavediff ...` end to end on the micro setup, and every user mistake as one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.wavediff.model import BUNDLED


def one_line_error(capsys, *argv, match: str) -> str:
    assert cli(list(argv)) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and "step/s" not in ln and "step]" not in ln]
    assert len(lines) == 1 and lines[0].startswith("seisfm: error:") and match in lines[0], err
    return lines[0]


def run_json(capsys, *argv) -> dict:
    assert cli([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A micro model trained for a handful of steps through the CLI."""
    d = tmp_path_factory.mktemp("wd")
    assert cli(["wavediff", "simulate", "--setup", "micro", "--n", "8", "--out", str(d / "pairs"), "--json"]) == 0
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
                "3",
                "--stage2-steps",
                "2",
                "--batch-size",
                "4",
                "--json",
            ]
        )
        == 0
    )
    return d


def test_simulate_writes_openfwi_layout(capsys, tmp_path):
    r = run_json(capsys, "wavediff", "simulate", "--setup", "micro", "--n", "3", "--out", str(tmp_path))
    assert r["seismic_shape"] == [3, 2, 150, 16] and r["velocity_shape"] == [3, 1, 16, 16]
    assert np.load(tmp_path / "data.npy").shape == (3, 2, 150, 16)
    # forward-model maps of your own
    np.save(tmp_path / "v.npy", np.full((16, 16), 2500.0, np.float32))
    r = run_json(
        capsys, "wavediff", "simulate", "--setup", "micro", "--velocity", str(tmp_path / "v.npy"), "--out", str(tmp_path / "own")
    )
    assert r["seismic_shape"] == [1, 2, 150, 16]


def test_train_sample_invert_residual(capsys, trained):
    model = str(trained / "run" / "run.safetensors")
    assert (trained / "run" / "run.toml").exists()
    r = run_json(
        capsys,
        "wavediff",
        "sample",
        "--model",
        model,
        "--n",
        "2",
        "--out",
        str(trained / "s.npz"),
        "--plot",
        str(trained / "s.png"),
    )
    saved = np.load(trained / "s.npz")
    assert saved["velocity"].shape == (2, 1, 16, 16) and saved["simulated"].shape == saved["seismic"].shape
    assert r["deviation_mean"] == pytest.approx(float(saved["deviation"].mean())) and (trained / "s.png").exists()
    r = run_json(
        capsys,
        "wavediff",
        "invert",
        "--model",
        model,
        "--data",
        str(trained / "pairs"),
        "--n",
        "2",
        "--steps",
        "2",
        "--candidates",
        "2",
    )
    assert 0 < r["mae_stage1"] < 2 and 0 < r["mae_refined"] < 2
    r = run_json(
        capsys,
        "wavediff",
        "residual",
        "--model",
        model,
        "--n",
        "2",
        "--n-random",
        "2",
        "--points",
        "2",
        "--csv",
        str(trained / "c.csv"),
        "--plot",
        str(trained / "c.png"),
    )
    assert {"trained", "random", "denoised_random", "mismatched_pairs", "forward", "backward"} <= set(r)
    assert (trained / "c.csv").read_text().startswith("process,step,deviation") and (trained / "c.png").exists()


def test_resume_continues_a_stopped_run(capsys, trained, tmp_path):
    args = [
        "wavediff",
        "train",
        "--setup",
        "micro",
        "--size",
        "micro",
        "--data",
        str(trained / "pairs"),
        "--out",
        str(tmp_path / "r"),
        "--stage1-steps",
        "2",
        "--stage2-steps",
        "1",
        "--batch-size",
        "2",
    ]
    r = run_json(capsys, *args, "--minutes", "0")
    assert not r["done"] and r["step"] == 1
    r = run_json(capsys, *args, "--resume")
    assert r["done"] and (tmp_path / "r" / "r.safetensors").exists()


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled weights not built")
def test_residual_with_no_arguments_uses_the_bundled_model(capsys):
    r = run_json(capsys, "wavediff", "residual", "--n", "2", "--n-random", "2", "--points", "2")
    assert r["model"] == "bundled" and r["n_trained"] == 2


def test_unstable_time_step_is_one_line(capsys, tmp_path):
    line = one_line_error(capsys, "wavediff", "simulate", "--dt", "0.003", "--out", str(tmp_path), match="CFL number")
    assert "1.350 exceeds the limit 0.555" in line


def test_bad_velocity_files_are_one_line(capsys, tmp_path):
    v = np.full((1, 1, 16, 16), 2000.0, np.float32)
    v[0, 0, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", v)
    one_line_error(
        capsys,
        "wavediff",
        "simulate",
        "--setup",
        "micro",
        "--velocity",
        str(tmp_path / "nan.npy"),
        "--out",
        str(tmp_path),
        match="NaN",
    )
    np.save(tmp_path / "neg.npy", np.full((1, 1, 16, 16), -2000.0, np.float32))
    one_line_error(
        capsys,
        "wavediff",
        "simulate",
        "--setup",
        "micro",
        "--velocity",
        str(tmp_path / "neg.npy"),
        "--out",
        str(tmp_path),
        match="non-positive",
    )
    np.save(tmp_path / "shape.npy", np.full((2, 1, 70, 70), 2000.0, np.float32))
    one_line_error(
        capsys,
        "wavediff",
        "simulate",
        "--setup",
        "micro",
        "--velocity",
        str(tmp_path / "shape.npy"),
        "--out",
        str(tmp_path),
        match="expected (N, 1, 16, 16)",
    )


def test_openfwi_files_of_the_wrong_shape_are_one_line(capsys, tmp_path):
    np.save(tmp_path / "data.npy", np.zeros((4, 5, 1000, 70), np.float32))
    np.save(tmp_path / "model.npy", np.full((4, 1, 70, 70), 2000.0, np.float32))
    one_line_error(
        capsys,
        "wavediff",
        "train",
        "--setup",
        "micro",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "r"),
        match="data.npy: seismic of shape (4, 5, 1000, 70); expected (N, 2, 150, 16)",
    )


def test_checkpoint_of_another_configuration_is_one_line(capsys, trained):
    one_line_error(
        capsys,
        "wavediff",
        "train",
        "--setup",
        "micro",
        "--size",
        "micro",
        "--two-vq",
        "--data",
        str(trained / "pairs"),
        "--out",
        str(trained / "run"),
        "--resume",
        match="another configuration",
    )


def test_missing_model_and_unknown_setup_are_one_line(capsys, tmp_path):
    one_line_error(capsys, "wavediff", "residual", "--model", str(tmp_path / "none.safetensors"), match="no such model file")
    one_line_error(capsys, "wavediff", "simulate", "--setup", "huge", "--out", str(tmp_path), match="unknown setup 'huge'")


def test_bundled_model_is_small_and_of_the_tiny_setup():
    from napari_seisfm.wavediff.data import SETUPS
    from napari_seisfm.wavediff.model import load

    assert BUNDLED.stat().st_size <= 50 * 2**20
    model, card = load()
    assert model.setup == SETUPS["tiny"] and card["name"] == "wavediff-tiny" and card["stage2_steps"] > 0
