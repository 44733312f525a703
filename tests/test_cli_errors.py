"""CLI and reader edge cases: NaN traces are dead, every user mistake is one line with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_seisfm import cube as cube_mod
from napari_seisfm.cli import main as cli
from napari_seisfm.cube import Geometry
from napari_seisfm.io import open_cube

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
    lines = [
        line for line in err.replace("\r", "\n").splitlines() if line.strip() and "it/s]" not in line and "pt/s]" not in line
    ]
    assert len(lines) == 1 and lines[0].startswith("seisfm: error:"), err  # progress bars aside
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
    assert (
        cli(
            [
                "embed",
                str(tmp_path / "c.npy"),
                "--out",
                str(tmp_path / "f.zarr"),
                "--model",
                "attributes",
                "--stride",
                "4",
                "--pca",
                "0",
            ]
        )
        == 0
    )
    fm = FeatureMatrix.open(tmp_path / "f.zarr")
    valid = fm.valid.reshape(fm.grid.shape)
    assert not valid[:2, :2].any() and valid[2:, 2:].all()
    capsys.readouterr()
    assert (
        cli(
            [
                "search",
                str(tmp_path / "f.zarr"),
                "--pos",
                "12,12,16",
                "--coords",
                "cube",
                "--decision",
                "centroid",
                "--out",
                str(tmp_path / "m.npy"),
                "--top",
                "10",
                "--radius",
                "0",
            ]
        )
        == 0
    )
    matches = [json.loads(line.split("}")[0] + "}") for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert matches and all(not (m["cube"][0] < 8 and m["cube"][1] < 8) for m in matches)
    assert np.isnan(np.load(tmp_path / "m.npy")[:2, :2]).all()


# ------------------------------------------------------------------ C: unwritable outputs are one line

EROFS = OSError(30, "Read-only file system")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A synthetic cube, its attribute features and a labels CSV (two classes, three points each)."""
    d = tmp_path_factory.mktemp("store")
    assert cli(["synth", str(d / "c.npy"), "--size", "32"]) == 0
    assert (
        cli(["embed", str(d / "c.npy"), "--out", str(d / "f.zarr"), "--model", "attributes", "--stride", "4", "--pca", "0"]) == 0
    )
    rows = [f"{i},{j},{t},{c}" for c, t in ((1, 4), (2, 24)) for i, j in ((2, 2), (10, 10), (20, 20))]
    (d / "labels.csv").write_text("il,xl,t,class\n" + "\n".join(rows) + "\n")
    (d / "afile").write_text("a file where a folder is expected")
    return d


def search_args(store, out, *extra):
    return ["search", str(store / "f.zarr"), "--pos", "8,8,8", "--coords", "cube", "--top", "0", "--out", str(out), *extra]


def segment_args(store, out, *extra):
    return [
        "segment",
        str(store / "f.zarr"),
        "--labels",
        str(store / "labels.csv"),
        "--coords",
        "cube",
        "--out",
        str(out),
        *extra,
    ]


def read_only(monkeypatch, *targets):
    """Simulate a read-only file system (as root, chmod does not stop writes): the writers raise EROFS."""

    def fail(*args, **kw):
        raise OSError(30, "Read-only file system", str(args[0]) if args else None)

    for obj, name in targets:
        monkeypatch.setattr(obj, name, fail)


@pytest.mark.parametrize("make", [search_args, segment_args])
def test_search_and_segment_outputs(store, tmp_path, capsys, monkeypatch, make):
    one_line_error(capsys, *make(store, store / "afile" / "o.npy"), match="is a file, not a folder")
    (tmp_path / "d.npy").mkdir()
    one_line_error(capsys, *make(store, tmp_path / "d.npy"), match="is a folder")
    one_line_error(capsys, *make(store, store / "afile" / "o.sgy", "--cube", str(store / "c.npy")), match="not a folder")
    assert cli(make(store, tmp_path / "new" / "sub" / "o.npy")) == 0  # missing folders are created, as embed does
    assert (tmp_path / "new" / "sub" / "o.npy").is_file()
    capsys.readouterr()
    read_only(monkeypatch, (np, "save"))
    one_line_error(capsys, *make(store, tmp_path / "ro.npy"), match="Read-only file system")
    import zarr

    real_open = zarr.open_group

    def open_group(path, *a, mode="r", **kw):
        if mode == "w":
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, *a, mode=mode, **kw)

    monkeypatch.setattr(zarr, "open_group", open_group)
    one_line_error(capsys, *make(store, tmp_path / "ro.zarr"), match="Read-only file system")


def test_segment_probabilities_on_a_read_only_place(store, tmp_path, capsys, monkeypatch):
    import napari_seisfm.commands.segment  # noqa: F401  (np.save is looked up at call time)

    real = np.save

    def save(path, arr, *a, **kw):
        if "p.npy" in str(path):  # the temporary name the atomic writer uses too
            raise OSError(30, "Read-only file system", str(path))
        return real(path, arr, *a, **kw)

    monkeypatch.setattr(np, "save", save)
    one_line_error(
        capsys, *segment_args(store, tmp_path / "o.npy", "--probabilities", str(tmp_path / "p.npy")), match="Read-only"
    )


@pytest.mark.parametrize("fmt", ["npy", "sgz", "sgy"])
def test_synth_outputs(store, tmp_path, capsys, monkeypatch, fmt):
    import os

    one_line_error(capsys, "synth", str(store / "afile" / f"s.{fmt}"), "--size", "32", match="not a folder")
    (tmp_path / f"d.{fmt}").mkdir()
    one_line_error(capsys, "synth", str(tmp_path / f"d.{fmt}"), "--size", "32", match="is a folder")
    assert cli(["synth", str(tmp_path / "n" / f"s.{fmt}"), "--size", "32"]) == 0
    capsys.readouterr()
    read_only(monkeypatch, (os, "replace"), (np, "save"))
    one_line_error(capsys, "synth", str(tmp_path / f"ro.{fmt}"), "--size", "32", match="Read-only")
    assert not list(tmp_path.glob("ro*partial*"))  # no half-written file left behind


def test_codecs_outputs(store, tmp_path, capsys, monkeypatch):
    from pathlib import Path

    (tmp_path / "d.csv").mkdir()
    base = ["codecs", str(store / "c.npy"), "--codecs", "quant8"]
    one_line_error(capsys, *base, "--out", str(tmp_path / "d.csv"), match="is a folder")
    one_line_error(capsys, *base, "--out", str(store / "afile" / "t.csv"), match="Not a directory")
    read_only(monkeypatch, (Path, "write_text"))
    one_line_error(capsys, *base, "--markdown", str(tmp_path / "t.md"), match="Read-only")
    from matplotlib.figure import Figure

    read_only(monkeypatch, (Figure, "savefig"))
    one_line_error(capsys, *base, "--plot", str(tmp_path / "t.png"), match="Read-only")


def test_any_oserror_naming_a_file_is_one_line(monkeypatch, capsys, tmp_path):
    from napari_seisfm.commands import info

    def run(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.npy"))

    monkeypatch.setattr(info, "run", run)
    one_line_error(capsys, "info", str(tmp_path / "x.npy"), match="Permission denied")


@pytest.mark.parametrize("array", ["embeddings", "valid"])
def test_garbled_array_metadata_is_one_line(store, tmp_path, capsys, array):
    import shutil

    shutil.copytree(store / "f.zarr", tmp_path / "g.zarr")
    (tmp_path / "g.zarr" / array / "zarr.json").write_text('{"shape": [1, 2], garbled')
    one_line_error(
        capsys, "search", str(tmp_path / "g.zarr"), "--pos", "8,8,8", "--coords", "cube", "--out", str(tmp_path / "o.npy")
    )


# ------------------------------------------------------------------ D: options that were silently accepted


def test_unknown_device_is_refused_before_any_work(store, tmp_path, capsys):
    one_line_error(
        capsys,
        "embed",
        str(store / "c.npy"),
        "--out",
        str(tmp_path / "f.zarr"),
        "--model",
        "attributes",
        "--device",
        "tpu",
        match="--device 'tpu'",
    )
    assert not (tmp_path / "f.zarr").exists()


def test_codecs_section_in_the_wrong_domain(store, capsys):
    one_line_error(capsys, "codecs", str(store / "c.npy"), "--codecs", "quant8", "--section", "depth=5", match="is in time")


@pytest.mark.parametrize("argv", [["--pos", "-5,0,0"], ["--pos=-5,0,0"], ["--pos", "1,1,1", "--neg", "-5.5,0,0"]])
def test_negative_points_reach_the_command(store, tmp_path, capsys, argv):
    # argparse used to stop at "-5,0,0" ("expected one argument"); now the point itself is judged
    assert cli(["search", str(store / "f.zarr"), "--coords", "grid", *argv, "--out", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert "outside the feature grid" in err and "usage:" not in err


def test_negative_values_are_values_and_options_stay_options():
    from napari_seisfm.cli import build_parser

    args = build_parser("search").parse_args(
        ["search", "f.zarr", "--pos", "-5,0,0", "--neg", "3,4,5", "--neg=-1.5;2;-3", "--top", "3", "--out", "o.npy"]
    )
    assert args.pos == [[-5.0, 0.0, 0.0]] and args.neg == [[3.0, 4.0, 5.0], [-1.5, 2.0, -3.0]]
    assert (args.top, args.out) == (3, "o.npy")


@pytest.mark.parametrize(
    "argv, match",
    [
        (["search", "f.zarr", "--pos", "1,2,3", "--out", "o.npy", "--top", "-1"], "--top must be 0 or more, got -1"),
        (
            ["search", "f.zarr", "--pos", "1,2,3", "--out", "o.npy", "--threshold", "nan"],
            "--threshold nan: must be a finite number",
        ),
        (["search", "f.zarr", "--pos", "1,2", "--out", "o.npy"], "point '1,2': expected three numbers"),
        (["embed", "c.npy", "--out", "f.zarr", "--stride", "0"], "--stride '0': expected one positive integer"),
        (["embed", "c.npy", "--out", "f.zarr", "--pca", "-1"], "--pca -1: must be 0 (off)"),
        (
            ["features", "import", "a.npy", "--cube", "c.npy", "--out", "f.zarr", "--origin", "-1"],
            "--origin '-1': expected one non-negative",
        ),
        (["convert", "c.sgy", "o.sgz", "--blockshape", "4,4"], "--blockshape '4,4': expected three integers"),
        (["segment", "f.zarr", "--labels", "l.npy", "--out", "o.npy", "--smooth", "inf"], "--smooth inf: must be 0 to 1000"),
        (["wavediff", "simulate", "--out", "d", "--n", "0"], "--n 0: must be 1 to 10000000"),
        (["wavediff", "train", "--data", "d", "--out", "o", "--dt", "-0.1"], "--dt -0.1: must be a positive number"),
    ],
)
def test_out_of_range_options_are_one_line_errors_before_any_work(argv, match, capsys, tmp_path, monkeypatch):
    """The argparse converters (parsing.py) refuse a value while parsing: one line, exit 2, no usage dump."""
    monkeypatch.chdir(tmp_path)
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert match in err and "usage:" not in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_text_that_is_no_number_stays_argparse_s_own_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli(["search", "f.zarr", "--pos", "1,2,3", "--out", "o.npy", "--top", "many"])
    assert exc.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_a_gpu_that_is_not_there_is_refused_for_the_attribute_embedder_too(store, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_line_error(
        capsys,
        "embed",
        str(store / "c.npy"),
        "--out",
        str(tmp_path / "f.zarr"),
        "--model",
        "attributes",
        "--device",
        "cuda",
        match="CUDA is not available",
    )
    assert not (tmp_path / "f.zarr").exists()
