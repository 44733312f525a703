"""Writing back: SEG-Y with the source headers, fresh SEG-Y, .sgz, .npy; strided overlays to the cube grid."""

import json
import subprocess
import sys

import numpy as np
import pytest
import segyio

from napari_seisfm.cube import Cube, Geometry
from napari_seisfm.errors import SeisfmError
from napari_seisfm.export import export_volume, to_cube_grid
from napari_seisfm.io import open_cube
from napari_seisfm.io.segy import write_like
from napari_seisfm.plugin.writer import write_image, write_labels


def _headers(path, endian="big"):
    with segyio.open(path, ignore_geometry=True, endian=endian) as f:
        return f.text[0], dict(f.bin), [dict(h) for h in f.header]


@pytest.mark.parametrize(
    "name", ["segyio-test/f3.sgy", "segyio-test/f3-lsb.sgy", "sgz-test/small-irregular.sgy", "real/penobscot_xl1155.sgy"]
)
def test_segy_round_trip_keeps_samples_and_headers(shared_data, tmp_path, name):
    src = shared_data / name
    cube = open_cube(src)
    out = write_like(tmp_path / "out.sgy", cube[:], cube)
    again = open_cube(out)
    assert np.array_equal(again[:], cube[:])
    endian = cube.info["endian"]
    assert _headers(out, endian) == _headers(src, endian)
    assert not list(tmp_path.glob("*.partial"))


def test_derived_float_map_is_not_squeezed_into_integers(shared_data, tmp_path):
    cube = open_cube(shared_data / "segyio-test" / "f3.sgy")  # 2-byte integer samples
    similarity = np.linspace(-1, 1, cube.size, dtype=np.float32).reshape(cube.shape)
    out = write_like(tmp_path / "sim.sgy", similarity, cube)
    assert open_cube(out).info["format"] == 5
    assert np.array_equal(open_cube(out)[:], similarity)
    text, _, headers = _headers(out)
    assert headers == _headers(shared_data / "segyio-test" / "f3.sgy")[2]


def test_shape_mismatch_refused(shared_data, tmp_path):
    cube = open_cube(shared_data / "segyio-test" / "f3.sgy")
    with pytest.raises(SeisfmError, match="does not match"):
        write_like(tmp_path / "x.sgy", np.zeros((2, 2, 2)), cube)


def test_fresh_segy_sgz_npy_from_array(tmp_path):
    geometry = Geometry.regular((6, 7, 40), first_inline=100, first_crossline=300, sample_interval=2.0, first_sample=10.0)
    data = np.random.default_rng(3).standard_normal(geometry.shape).astype(np.float32)
    cube = Cube.from_array(data, geometry)
    for suffix in (".sgy", ".sgz", ".npy"):
        out = export_volume(tmp_path / f"c{suffix}", data, cube)
        back = open_cube(out)
        assert back.geometry.fingerprint() == geometry.fingerprint(), suffix
        tol = 0.05 if suffix == ".sgz" else 0
        assert np.abs(back[:] - data).max() <= tol * np.abs(data).max(), suffix
    assert json.loads((tmp_path / "c.npy.json").read_text())["ilines"] == [100, 105, 1]


def test_strided_overlay_goes_to_full_resolution(tmp_path):
    geometry = Geometry.regular((9, 9, 17))
    cube = Cube.from_array(np.zeros(geometry.shape, np.float32), geometry)
    grid = np.arange(3 * 3 * 5, dtype=np.float32).reshape(3, 3, 5)
    full = to_cube_grid(grid, cube.shape, stride=(4, 4, 4))
    assert full.shape == cube.shape
    assert full[0, 0, 0] == grid[0, 0, 0] and full[8, 8, 16] == grid[2, 2, 4]
    assert full[2, 0, 0] == pytest.approx((grid[0, 0, 0] + grid[1, 0, 0]) / 2)  # linear between grid points
    labels = to_cube_grid(np.array([[[1, 2]]]), (1, 1, 8), stride=(1, 1, 4), labels=True)
    assert set(np.unique(labels)) == {1, 2}
    out = export_volume(tmp_path / "lab.npy", np.ones((3, 3, 5), np.uint8), cube, stride=(4, 4, 4), labels=True)
    assert np.load(out).shape == cube.shape


def test_napari_writer_uses_source_headers(shared_data, tmp_path):
    src = shared_data / "segyio-test" / "f3.sgy"
    cube = open_cube(src)
    labels = (cube[:] > 0).astype(np.int32)
    meta = {"metadata": {"path": str(src), "geometry": cube.geometry.summary()}}
    [out] = write_labels(str(tmp_path / "labels.sgy"), labels, meta)
    assert np.array_equal(open_cube(out)[:], labels)
    assert _headers(out)[2] == _headers(src)[2]
    [out] = write_image(str(tmp_path / "img.npy"), cube[:], {"metadata": {"geometry": cube.geometry.summary()}})
    assert open_cube(out).geometry.fingerprint() == cube.geometry.fingerprint()
    with pytest.raises(SeisfmError, match="no seismic geometry"):
        write_image(str(tmp_path / "x.sgy"), cube[:], {"metadata": {}})


def test_cli_info_json(shared_data):
    out = subprocess.run(
        [sys.executable, "-m", "napari_seisfm.cli", "info", str(shared_data / "segyio-test" / "f3.sgy"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["geometry"]["ilines"] == [111, 133, 1]
    assert info["geometry"]["xlines"] == [875, 892, 1]
    assert info["geometry"]["samples"] == [4, 300, 4] and info["geometry"]["shape"] == [23, 18, 75]
    assert info["format"] == "2-byte signed int"


def test_array_writer_is_atomic_and_replaces_an_old_output(tmp_path, monkeypatch):
    """An export that fails half-way leaves neither a finished-looking file nor its temporary; a good one
    replaces what was there (.npy and .zarr, the formats written by one function)."""
    import zarr

    from napari_seisfm import export

    for name in ("map.npy", "map.zarr"):
        out = tmp_path / name
        export.write_array(out, np.zeros((2, 3, 4), np.float32), {"stride": [2, 2, 2]})
        export.write_array(out, np.ones((2, 3, 4), np.float32), {"stride": [2, 2, 2]})
        back = np.load(out) if name.endswith(".npy") else zarr.open_group(str(out), mode="r")["data"][:]
        np.testing.assert_array_equal(back, 1)

        def disk_full(*a, **k):
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as m:
            m.setattr(np, "save", disk_full)
            m.setattr(zarr, "open_group", disk_full)
            with pytest.raises(SeisfmError, match="No space left"):
                export.write_array(tmp_path / ("new" + out.suffix), np.ones((2, 3, 4), np.float32))
        assert not (tmp_path / ("new" + out.suffix)).exists()
        assert not any(p.name.startswith("new") for p in tmp_path.iterdir())
