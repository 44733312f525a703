"""Cube geometry and lazy reads on real SEG-Y and seismic-zfp files."""

import warnings

import numpy as np
import pytest
import segyio

from napari_seisfm.cube import Cube, Geometry
from napari_seisfm.errors import SeisfmError
from napari_seisfm.io import open_cube

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)


def test_f3_geometry(shared_data):
    with open_cube(shared_data / "segyio-test" / "f3.sgy") as cube:
        g = cube.geometry
        assert cube.shape == (23, 18, 75)
        assert (g.ilines[0], g.ilines[-1]) == (111, 133)
        assert (g.xlines[0], g.xlines[-1]) == (875, 892)
        assert g.spacing == (1.0, 1.0, 4.0)
        assert g.sample_unit == "ms" and g.kind == "3d" and g.dead is None
        assert cube.info["format"] == 3


def test_reads_match_segyio(shared_data):
    path = shared_data / "segyio-test" / "f3.sgy"
    with open_cube(path) as cube, segyio.open(path) as f:
        full = segyio.tools.cube(f)
        assert np.array_equal(cube[:, :, :], full)
        assert np.array_equal(cube.inline(120), f.iline[120])
        assert np.array_equal(cube.crossline(880), f.xline[880])
        assert np.array_equal(cube.time_slice(100.0), full[:, :, 24])
        assert np.array_equal(cube.subvolume(il=(115, 120), xl=(880, 885), t=(40, 80)), full[4:10, 5:11, 9:20])
        assert np.array_equal(cube[2:20:3, ::2, 5:60:7], full[2:20:3, ::2, 5:60:7])
        assert np.array_equal(cube[-1], full[-1])


def test_little_endian_equals_big_endian(shared_data):
    a = open_cube(shared_data / "segyio-test" / "f3.sgy")
    b = open_cube(shared_data / "segyio-test" / "f3-lsb.sgy")
    assert b.info["endian"] == "little"
    assert np.array_equal(a[:], b[:])
    assert a.geometry.fingerprint() == b.geometry.fingerprint()


def test_sample_formats_agree(shared_data):
    cubes = {n: open_cube(shared_data / "segyio-test" / f"Format{n}msb.sgy")[:] for n in (1, 5, 8)}
    assert np.array_equal(cubes[1], cubes[5])  # IBM and IEEE float hold the same values
    assert cubes[8].min() >= -128 and cubes[8].max() <= 127  # 1-byte ints: same geometry, clipped values
    assert cubes[8].shape == cubes[1].shape


def test_penobscot_is_a_2d_line(shared_data):
    with open_cube(shared_data / "real" / "penobscot_xl1155.sgy") as cube:
        assert cube.shape == (601, 1, 1501)
        assert cube.geometry.kind == "2d"
        assert cube.geometry.xlines.tolist() == [1155]
        assert cube.geometry.spacing[2] == 4.0
        line = cube[:, 0, :]
        assert line.shape == (601, 1501) and np.isfinite(line).all() and line.std() > 0


def test_sgz_matches_its_segy_source(shared_data):
    src = open_cube(shared_data / "sgz-test" / "small.sgy")[:]
    amp = np.abs(src).max()
    for name, tol in (("small_1bit.sgz", 0.5), ("small_2bit-64x64.sgz", 0.2)):
        with open_cube(shared_data / "sgz-test" / name) as cube:
            assert cube.shape == src.shape
            err = np.abs(cube[:] - src).max() / amp
            assert err < tol, (name, err)
            assert np.array_equal(cube.inline(3), cube[:][2])  # plane reads equal sub-volume reads
            assert np.array_equal(cube[:, :, 7], cube[:][:, :, 7])
    dec = open_cube(shared_data / "sgz-test" / "small-dec_8bit.sgz")
    ref = open_cube(shared_data / "sgz-test" / "small-dec.sgy")
    assert np.abs(dec[:] - ref[:]).max() / np.abs(ref[:]).max() < 0.01
    assert np.array_equal(dec.geometry.ilines, ref.geometry.ilines)


def test_irregular_survey_has_dead_trace_mask(shared_data):
    for name in ("small-irregular.sgy", "small-irregular.sgz"):
        with open_cube(shared_data / "sgz-test" / name) as cube:
            assert cube.shape == (5, 5, 50)
            dead = cube.geometry.dead
            assert dead is not None and dead.sum() == 1
            i, j = np.argwhere(dead)[0]
            assert np.all(cube[i, j] == 0)
            assert np.abs(cube[:][~dead]).min(axis=-1).max() > 0  # live traces carry data
    sgy = open_cube(shared_data / "sgz-test" / "small-irregular.sgy")
    sgz = open_cube(shared_data / "sgz-test" / "small-irregular.sgz")
    assert np.array_equal(sgy.geometry.dead, sgz.geometry.dead)


def test_2d_sgz_and_headerless_line(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sgy = open_cube(shared_data / "sgz-test" / "small-2d.sgy")
    sgz = open_cube(shared_data / "sgz-test" / "small-2d.sgz")
    assert sgy.shape == sgz.shape == (1, 25, 50)
    assert np.abs(sgy[:] - sgz[:]).max() < 0.01 * np.abs(sgy[:]).max()


def test_npy_cube_is_memory_mapped(tmp_path):
    data = np.random.default_rng(0).standard_normal((6, 5, 8)).astype(np.float32)
    np.save(tmp_path / "c.npy", data)
    cube = open_cube(tmp_path / "c.npy")
    assert isinstance(cube._backend.array, np.memmap)
    assert np.array_equal(cube[2], data[2])
    assert cube.geometry.sample_unit == "samples"


def test_whole_cube_refused_when_too_big(monkeypatch):
    import napari_seisfm.cube as cube_mod

    cube = Cube.from_array(np.broadcast_to(np.float32(0), (512, 512, 512)))  # 512 MiB as float32, no memory used
    monkeypatch.setattr(cube_mod, "available_memory", lambda: 2**29)
    with pytest.raises(SeisfmError, match="free memory"):
        cube.read()
    with pytest.raises(SeisfmError, match="free memory"):
        cube[:, :, :300]
    assert cube[1].shape == (512, 512)  # slices still work


def test_survey_numbers_outside_the_cube():
    cube = Cube.from_array(np.zeros((3, 4, 5), np.float32), Geometry.regular((3, 4, 5), first_inline=10))
    with pytest.raises(SeisfmError, match="inline 99"):
        cube.inline(99)
    with pytest.raises(IndexError):
        cube[7]


def test_fingerprint_depends_on_grid_only():
    a = Geometry.regular((3, 4, 5))
    assert a.fingerprint() == Geometry.regular((3, 4, 5)).fingerprint()
    assert a.fingerprint() != Geometry.regular((3, 4, 6)).fingerprint()
    assert a.fingerprint() != Geometry.regular((3, 4, 5), first_inline=2).fingerprint()
