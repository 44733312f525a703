"""CLI and reader edge cases: NaN traces are dead, every user mistake is one line with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_seisfm import cube as cube_mod
from napari_seisfm.cli import main as cli
from napari_seisfm.cube import Geometry, open_cube

NAN_TRACES = [(2, 3), (5, 0), (7, 7)]


def nan_cube(shape=(16, 12, 48), seed=0) -> np.ndarray:
    data = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    for i, j in NAN_TRACES:
        data[i, j] = np.nan
    data[1, 1, 5] = np.inf  # one bad sample also makes a trace unusable
    return data


def one_line_error(capsys, *argv, match=None) -> str:
    assert cli(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("seisfm: error:") and err.count("\n") == 1, err
    if match:
        assert match in err, err
    return err


# ------------------------------------------------------------------ B: NaN traces are dead


def test_nan_traces_are_dead_in_npy_info(tmp_path, capsys):
    np.save(tmp_path / "nan.npy", nan_cube())
    assert cli(["info", "--json", str(tmp_path / "nan.npy")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["geometry"]["dead_traces"] == len(NAN_TRACES) + 1
    assert any("NaN/inf" in n for n in info["geometry"]["notes"])


def test_all_nan_file_has_no_live_traces(tmp_path, capsys):
    np.save(tmp_path / "all.npy", np.full((4, 5, 20), np.nan, np.float32))
    assert cli(["info", str(tmp_path / "all.npy")]) == 0
    assert "dead traces 20" in capsys.readouterr().out


def test_nan_traces_are_dead_in_segy(tmp_path):
    from napari_seisfm.io.segy import write_segy

    data = nan_cube()
    write_segy(tmp_path / "nan.sgy", data, Geometry.regular(data.shape))
    with open_cube(tmp_path / "nan.sgy") as c:
        assert c.geometry.n_dead == len(NAN_TRACES) + 1
        assert all(c.geometry.dead[i, j] for i, j in NAN_TRACES)


def test_nan_traces_are_dead_in_sgz(tmp_path, monkeypatch):
    # ZFP cannot store NaN (they come back as finite garbage), so inject them at read time, as a
    # file converted from NaN-filled SEG-Y by another tool could deliver them
    from napari_seisfm.io import sgz

    data = nan_cube()
    sgz.write_sgz(tmp_path / "c.sgz", np.nan_to_num(data, nan=0.0, posinf=0.0), Geometry.regular(data.shape))
    real = sgz.SgzBackend.read

    def read(self, il, xl, t):
        block = real(self, il, xl, t)
        block[np.isnan(data[il, xl, t])] = np.nan
        return block

    monkeypatch.setattr(sgz.SgzBackend, "read", read)
    with open_cube(tmp_path / "c.sgz") as c:
        assert c.geometry.n_dead == len(NAN_TRACES)  # the lone inf sample was written as 0


def test_large_cubes_find_nan_filled_traces_from_three_slices(tmp_path, monkeypatch):
    monkeypatch.setattr(cube_mod, "SCAN_ALL_BYTES", 0)
    np.save(tmp_path / "nan.npy", nan_cube())
    with open_cube(tmp_path / "nan.npy") as c:
        assert c.geometry.n_dead == len(NAN_TRACES)  # the single inf sample is between the probed slices


def test_nan_traces_are_invalid_after_embed_and_never_match(tmp_path, capsys):
    from napari_seisfm.search import FeatureMatrix

    data = nan_cube(shape=(16, 16, 32))
    data[:8, :8] = np.nan  # a whole dead corner: without the mask it scores 1.0 against itself
    np.save(tmp_path / "c.npy", data)
    assert cli(["embed", str(tmp_path / "c.npy"), "--out", str(tmp_path / "f.zarr"), "--model", "attributes",
                "--stride", "4", "--pca", "0"]) == 0
    fm = FeatureMatrix.open(tmp_path / "f.zarr")
    valid = fm.valid.reshape(fm.grid.shape)
    assert not valid[:2, :2].any() and valid[2:, 2:].all()
    capsys.readouterr()
    assert cli(["search", str(tmp_path / "f.zarr"), "--pos", "12,12,16", "--coords", "cube", "--decision", "centroid",
                "--out", str(tmp_path / "m.npy"), "--top", "10", "--radius", "0"]) == 0
    matches = [json.loads(line.split("}")[0] + "}") for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert matches and all(not (m["cube"][0] < 8 and m["cube"][1] < 8) for m in matches)
    assert np.isnan(np.load(tmp_path / "m.npy")[:2, :2]).all()
