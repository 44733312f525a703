"""Input files that used to give silently wrong data or read other files (issue 23): SEG-Y with damaged line
headers (D1), .sgz headers with absurd coordinates, HDF5 external storage and virtual datasets, links out of a
.zarr folder (D3), and `--dataset` on a .npy."""

from __future__ import annotations

import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.errors import SeisfmError
from napari_seisfm.io import open_cube
from napari_seisfm.store.sources import open_source_array

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

SGZ_FILES = ("small-2d.sgz", "small-dec_8bit.sgz", "small-irregular.sgz", "small_1bit.sgz", "small_2bit-64x64.sgz")


def one_line_error(capsys, *argv, match: str) -> str:
    assert cli([str(a) for a in argv]) == 2
    err = [
        ln
        for ln in capsys.readouterr().err.replace("\r", "\n").splitlines()
        if ln.strip() and "/s]" not in ln and not ln.startswith("seisfm: warning:")
    ]  # warnings are not errors
    assert len(err) == 1 and err[0].startswith("seisfm: error:") and match in err[0], err
    return err[0]


# ------------------------------------------------------------------ D1: SEG-Y whose line headers are damaged


@pytest.fixture
def damaged_f3(shared_data, tmp_path) -> Path:
    """F3 (23 inlines x 18 crosslines x 75 samples) with garbage in the inline header of three traces: too sparse
    for a grid, so it opens as a plain collection of 414 traces, while segyio, which samples a few headers,
    still takes it for a regular 23 x 18 cube."""
    p = tmp_path / "damaged.sgy"
    shutil.copy(shared_data / "segyio-test" / "f3.sgy", p)
    trace_bytes = 240 + 75 * 2  # format 3: 2-byte integers
    with open(p, "r+b") as f:
        for t in (5, 100, 200):
            f.seek(3600 + t * trace_bytes + 188)
            f.write(struct.pack(">i", 2**30 + t))
    return p


def _traces(path) -> np.ndarray:
    import segyio

    with segyio.open(str(path), ignore_geometry=True) as f:
        return np.asarray(f.trace.raw[:], np.float32)


def test_a_plain_collection_of_traces_reads_its_own_sections(damaged_f3):
    truth = _traces(damaged_f3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = open_cube(damaged_f3)
    assert any("plain collection of traces" in str(w.message) for w in caught)
    with cube:
        assert cube.shape == (1, 414, 75)
        # the plane path napari's lazy display takes: it returned segyio's own inline, 18 x 75
        section = cube[0]
        assert section.shape == (414, 75) and np.array_equal(section, truth)
        assert np.array_equal(cube[:, 100], truth[100][None])
        assert np.array_equal(cube[:, :, 40], truth[None, :, 40])
        assert np.array_equal(cube.inline(1), truth)


def test_an_intact_cube_keeps_segyio_fast_line_readers(shared_data):
    path = shared_data / "segyio-test" / "f3.sgy"
    truth = _traces(path).reshape(23, 18, 75)
    with open_cube(path) as cube:
        assert cube._backend.segyio_lines
        assert np.array_equal(cube[7], truth[7]) and np.array_equal(cube[:, 3], truth[:, 3])


@pytest.mark.extra("codecs")
def test_codecs_section_and_embed_on_a_damaged_file(damaged_f3, tmp_path, capsys):
    assert cli(["codecs", str(damaged_f3), "--codecs", "quant8", "--section", "inline=1"]) == 0
    out = capsys.readouterr().out
    assert "Section 414x75" in out  # it compared segyio's 18-trace inline
    assert cli(["embed", str(damaged_f3), "--out", str(tmp_path / "d.zarr"), "--model", "attributes", "--stride", "4"]) == 0
    captured = capsys.readouterr()
    assert "internal error" not in captured.err and "wrote" in captured.out


@pytest.mark.extra("codecs")
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_codecs_section_must_be_a_finite_number(damaged_f3, capsys, value):
    one_line_error(
        capsys, "codecs", damaged_f3, "--codecs", "quant8", "--section", f"inline={value}", match="not a finite number"
    )


# ------------------------------------------------------------------ .sgz headers: coordinates


def _header_case(src: Path, dst: Path, offset: int, data: bytes) -> Path:
    raw = bytearray(src.read_bytes())
    raw[offset : offset + len(data)] = data
    dst.write_bytes(bytes(raw))
    return dst


def test_absurd_sgz_coordinates_are_refused(shared_data, tmp_path):
    src = shared_data / "sgz-test" / "small_2bit-64x64.sgz"
    cases = {
        "sample interval 5e-324 ms": (92, struct.pack("<d", 5e-321)),  # stored in microseconds
        "sample interval 2e5 ms": (92, struct.pack("<d", 2e8)),
        "first sample 1e300": (84, struct.pack("<dd", 1e300, 4000.0)),  # both doubles: the file's own are 0 (unused)
        "inline step 16777217": (36, struct.pack("<I", 16777217)),
        "first inline 3 (the trace headers say 1)": (24, struct.pack("<I", 3)),
        "sample interval 8 ms (the SEG-Y binary header says 4)": (92, struct.pack("<d", 8000.0)),
    }
    for name, (offset, data) in cases.items():
        p = _header_case(src, tmp_path / "x.sgz", offset, data)
        with pytest.raises(SeisfmError, match="inconsistent .sgz") as info:
            open_cube(p)
        assert "\n" not in str(info.value), name


def test_every_single_bit_flip_of_the_coordinate_fields(shared_data, tmp_path):
    """All 1600 single-bit flips of the coordinate fields (bytes 16-39 and 84-99) of the five .sgz test files:
    each is refused in one line or reads the original geometry. Before, 1013 opened with other coordinates
    (a sample interval of 5e-324 ms among them)."""
    wrong, refused, total = [], 0, 0
    for name in SGZ_FILES:
        src = shared_data / "sgz-test" / name
        with open_cube(src) as ref:
            g0 = ref.geometry
        data = src.read_bytes()
        for byte in (*range(16, 40), *range(84, 100)):
            for bit in range(8):
                raw = bytearray(data)
                raw[byte] ^= 1 << bit
                p = tmp_path / "flip.sgz"
                p.write_bytes(bytes(raw))
                total += 1
                try:
                    cube = open_cube(p)
                except SeisfmError as exc:
                    assert "\n" not in str(exc)
                    refused += 1
                    continue
                with cube:
                    g = cube.geometry
                    if not all(np.array_equal(getattr(g, a), getattr(g0, a)) for a in ("ilines", "xlines", "samples")):
                        wrong.append((name, byte, bit))
    assert total == 1600 and not wrong, wrong[:10]
    assert refused > 1000


def test_own_sgz_files_with_any_geometry_still_open(tmp_path):
    """write_sgz (seismic-zfp's NumpyConverter) stores no SEG-Y binary header: its first sample and line numbers
    are its own, and must not be taken for damage."""
    from napari_seisfm.cube import Geometry
    from napari_seisfm.io.sgz import write_sgz

    g = Geometry.regular((8, 12, 16), first_inline=1000, first_crossline=7, sample_interval=2.0, first_sample=50.0)
    data = np.random.default_rng(0).normal(size=g.shape).astype(np.float32)
    write_sgz(tmp_path / "w.sgz", data, g)
    with open_cube(tmp_path / "w.sgz") as c:
        assert c.geometry.origin == (1000.0, 7.0, 50.0) and c.geometry.spacing == (1.0, 1.0, 2.0)


# ------------------------------------------------------------------ D3: feature arrays that point elsewhere


@pytest.fixture
def cube(tmp_path) -> Path:
    assert cli(["synth", str(tmp_path / "c.npy"), "--size", "32"]) == 0
    return tmp_path / "c.npy"


def test_hdf5_external_storage_is_refused(tmp_path, cube, capsys):
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not yours" * 4096)
    with h5py.File(tmp_path / "ext.h5", "w") as f:  # the grid of stride 4 on the 32^3 cube, 8 channels of bytes
        f.create_dataset("features", shape=(8, 8, 8, 8), dtype="u1", external=[(str(secret), 0, 8**4)])
    with pytest.raises(SeisfmError, match="HDF5 external storage"):
        open_source_array(tmp_path / "ext.h5")
    one_line_error(
        capsys,
        "features",
        "import",
        tmp_path / "ext.h5",
        "--cube",
        cube,
        "--out",
        tmp_path / "s.zarr",
        match="keeps its data in other files",
    )
    assert not (tmp_path / "s.zarr").exists()


def test_hdf5_virtual_datasets_are_refused(tmp_path, cube, capsys):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("data", data=np.ones((8, 8, 8, 4), np.float32))
    layout = h5py.VirtualLayout(shape=(8, 8, 8, 4), dtype="f4")
    layout[...] = h5py.VirtualSource(str(tmp_path / "other.h5"), "data", shape=(8, 8, 8, 4))
    with h5py.File(tmp_path / "vds.h5", "w") as f:
        f.create_virtual_dataset("features", layout)
    one_line_error(
        capsys, "features", "import", tmp_path / "vds.h5", "--cube", cube, "--out", tmp_path / "s.zarr", match="virtual dataset"
    )


def test_links_out_of_a_zarr_array_are_refused(tmp_path, cube, capsys):
    import zarr

    z = zarr.create_array(str(tmp_path / "f.zarr"), shape=(8, 8, 8, 4), chunks=(8, 8, 8, 4), dtype="f4")
    z[...] = 1.0
    chunk = next(p for p in (tmp_path / "f.zarr").rglob("*") if p.is_file() and p.name != "zarr.json")
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(chunk.read_bytes())
    chunk.unlink()
    chunk.symlink_to(outside)
    one_line_error(
        capsys, "features", "import", tmp_path / "f.zarr", "--cube", cube, "--out", tmp_path / "s.zarr", match="outside the array"
    )


def test_dataset_is_refused_for_a_npy(tmp_path, cube, capsys):
    np.save(tmp_path / "f.npy", np.ones((8, 8, 8, 4), np.float32))
    one_line_error(
        capsys,
        "features",
        "import",
        tmp_path / "f.npy",
        "--cube",
        cube,
        "--out",
        tmp_path / "s.zarr",
        "--dataset",
        "other",
        match="drop --dataset",
    )
