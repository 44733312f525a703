"""`seisfm convert`: SEG-Y -> .sgz through seismic-zfp, geometry kept, atomic finish, one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seisfm.cli import main
from napari_seisfm.cube import Geometry
from napari_seisfm.io import open_cube
from napari_seisfm.io.segy import write_segy
from napari_seisfm.io.sgz import convert_segy
from napari_seisfm.synthetic import make_survey

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)


@pytest.fixture
def own_segy(tmp_path):
    """A SEG-Y written by the project's own writer (no shared data needed)."""
    s = make_survey((32, 40, 64), seed=4)
    geometry = Geometry.regular(s.amplitude.shape, first_inline=100, first_crossline=300, sample_interval=2.0, first_sample=8.0)
    return write_segy(tmp_path / "cube.sgy", s.amplitude.astype(np.float32), geometry)


def _snr_db(a, b):
    error = np.mean((a - b) ** 2)
    return np.inf if error == 0 else 10 * np.log10(np.mean(a**2) / error)


@pytest.mark.parametrize("bits, blockshape, min_snr", [(8, None, 30), (16, None, 60), (8, (16, 16, 16), 30), (2, None, 5)])
def test_round_trip_keeps_geometry(own_segy, tmp_path, capsys, bits, blockshape, min_snr):
    out = tmp_path / "cube.sgz"
    argv = ["convert", str(own_segy), str(out), "--bits", str(bits)]
    if blockshape:
        argv += ["--blockshape", ",".join(map(str, blockshape))]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert not out.with_name(out.name + ".partial").exists()
    with open_cube(own_segy) as a, open_cube(out) as b:
        assert b.shape == a.shape
        for name in ("ilines", "xlines", "samples"):
            np.testing.assert_array_equal(getattr(b.geometry, name), getattr(a.geometry, name))
        assert b.info["bits_per_voxel"] == bits
        x, y = a.read(), b.read()
        assert _snr_db(x, y) > min_snr
        np.testing.assert_array_equal(b[3:7, 5:21, 10:50], y[3:7, 5:21, 10:50])  # a block read, as extraction does
    assert own_segy.is_file()


def test_progress_reaches_the_file_size(own_segy, tmp_path):
    seen = []
    out = convert_segy(own_segy, tmp_path / "p.sgz", bits=4, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == out.stat().st_size and seen[-1][0] <= seen[-1][1]


@pytest.mark.parametrize("name", ["f3.sgy", "small.sgy", "left-small.sgy", "Format1msb.sgy"])
def test_segyio_test_files(shared_data, tmp_path, name):
    src = shared_data / "segyio-test" / name
    if not src.is_file():
        pytest.skip(f"{src} not found")
    out = convert_segy(src, tmp_path / "c.sgz", bits=16)
    with open_cube(src) as a, open_cube(out) as b:
        assert b.shape == a.shape
        np.testing.assert_array_equal(b.geometry.ilines, a.geometry.ilines)
        np.testing.assert_array_equal(b.geometry.xlines, a.geometry.xlines)
        x, y = a.read(), b.read()
        assert _snr_db(x, y) > 60 if np.any(x) else np.all(y == 0)


def test_failed_conversion_leaves_nothing(shared_data, tmp_path, capsys):
    """A SEG-Y our reader accepts but seismic-zfp cannot convert (little-endian): exit 2, no OUT, no temp file."""
    src = shared_data / "segyio-test" / "f3-lsb.sgy"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    before = src.read_bytes()
    out = tmp_path / "lsb.sgz"
    assert main(["convert", str(src), str(out)]) == 2
    assert "seismic-zfp could not convert" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert src.read_bytes() == before


def test_not_segy_is_refused(tmp_path, capsys):
    bad = tmp_path / "notes.sgy"
    bad.write_text("not seismic at all\n" * 300)
    assert main(["convert", str(bad), str(tmp_path / "o.sgz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seisfm: error:") and "notes.sgy" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.sgz").exists()


def test_existing_output_is_refused_and_untouched(own_segy, tmp_path, capsys):
    out = tmp_path / "there.sgz"
    out.write_bytes(b"keep me")
    assert main(["convert", str(own_segy), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["convert", str(own_segy), str(out), "--overwrite"]) == 0
    with open_cube(out) as cube:
        assert cube.shape == (32, 40, 64)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bits", "3"], "--bits 3 not offered"),
        (["--blockshape", "8,8,8"], "not one 4096-byte disk block"),
        (["--blockshape", "6,4,-1"], "powers of two"),
        (["--blockshape", "4,4"], "three integers"),
    ],
)
def test_bad_options_one_line(own_segy, tmp_path, capsys, args, message):
    assert main(["convert", str(own_segy), str(tmp_path / "o.sgz"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.sgz").exists()


def test_wrong_names_refused(own_segy, tmp_path, capsys):
    assert main(["convert", str(own_segy), str(tmp_path / "o.zarr")]) == 2
    assert "must be named .sgz" in capsys.readouterr().err
    npy = tmp_path / "c.npy"
    np.save(npy, np.zeros((4, 4, 8), np.float32))
    assert main(["convert", str(npy), str(tmp_path / "o.sgz")]) == 2
    assert "not a SEG-Y file name" in capsys.readouterr().err


def test_damaged_segy_refused_source_untouched(shared_data, tmp_path, capsys):
    src = shared_data / "segyio-test" / "broken.sgy"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    before = src.read_bytes()
    assert main(["convert", str(src), str(tmp_path / "b.sgz")]) == 2
    err = capsys.readouterr().err
    assert "broken.sgy" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [] and src.read_bytes() == before
