"""Every broken input a user can hand us ends in one clear line, never a traceback, crash or hang."""

import shutil
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest

from napari_seisfm.errors import SeisfmError
from napari_seisfm.io import open_cube
from napari_seisfm.plugin.reader import get_reader


def _expect_clear_error(path, match):
    with pytest.raises(SeisfmError, match=match) as info:
        open_cube(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_truncated_file(shared_data):
    _expect_clear_error(shared_data / "segyio-test" / "broken.sgy", "truncated")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.sgy").write_bytes(b"")
    _expect_clear_error(tmp_path / "empty.sgy", "empty file")
    (tmp_path / "empty.sgz").write_bytes(b"")
    _expect_clear_error(tmp_path / "empty.sgz", "empty file")


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(20):  # several random files: every one must end in a clean error
        p = tmp_path / f"random{i}.sgy"
        p.write_bytes(rng.integers(0, 256, int(rng.integers(10, 20000)), dtype=np.uint8).tobytes())
        with pytest.raises(SeisfmError):
            open_cube(p)
    q = tmp_path / "random.sgz"
    q.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(SeisfmError):
        open_cube(q)


def test_text_file_named_sgy(tmp_path):
    p = tmp_path / "notes.sgy"
    p.write_text("This is a text file, not seismic.\n" * 200)
    _expect_clear_error(p, "not a readable SEG-Y")


def test_directory_and_missing_path(tmp_path):
    d = tmp_path / "cube.sgy"
    d.mkdir()
    _expect_clear_error(d, "is a directory")
    _expect_clear_error(tmp_path / "nope.sgy", "no such file")


def test_unknown_suffix(tmp_path):
    p = tmp_path / "cube.txt"
    p.write_text("x")
    _expect_clear_error(p, "unsupported file type")


def test_invalid_sample_format_code(shared_data, tmp_path):
    p = tmp_path / "badformat.sgy"
    shutil.copy(shared_data / "segyio-test" / "small.sgy", p)
    with open(p, "r+b") as f:
        f.seek(3224)
        f.write(struct.pack(">h", 42))
    _expect_clear_error(p, "invalid sample format code 42")


def test_every_truncation_is_clean(shared_data, tmp_path):
    """Cut a real file at many lengths: each is a clean error or a correct read of the whole traces left."""
    original = open_cube(shared_data / "segyio-test" / "small.sgy")
    src = (shared_data / "segyio-test" / "small.sgy").read_bytes()
    trace_bytes = 240 + 50 * 4
    lengths = list(range(0, len(src), 997)) + [3600 + trace_bytes * k for k in (1, 7, 24)]
    opened = 0
    for n in lengths:
        p = tmp_path / f"cut{n}.sgy"
        p.write_bytes(src[:n])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cut = open_cube(p)
                data = cut[:]
        except SeisfmError:
            continue
        opened += 1
        assert (n - 3600) % trace_bytes == 0, f"a file cut mid-trace at {n} bytes opened"
        g = cut.geometry
        for i, il in enumerate(g.ilines):
            for j, xl in enumerate(g.xlines):
                if g.dead is None or not g.dead[i, j]:
                    assert np.array_equal(data[i, j], original.subvolume(il=(il, il), xl=(xl, xl))[0, 0])
    assert opened == 3  # the three cuts on trace boundaries are valid, shorter files


def test_corrupted_headers_never_crash(shared_data, tmp_path):
    """Flip bytes in headers: each file opens correctly or fails with SeisfmError (run in a subprocess to catch crashes)."""
    script = f"""
import numpy as np, warnings, sys
from pathlib import Path
from napari_seisfm.io import open_cube
from napari_seisfm.errors import SeisfmError
warnings.simplefilter("ignore")
src = Path({str(shared_data / "segyio-test" / "small.sgy")!r}).read_bytes()
rng = np.random.default_rng(7)
for i in range(60):
    b = bytearray(src)
    for pos in rng.integers(3200, 3600 + 240 * 3, 4):
        b[pos] = int(rng.integers(0, 256))
    p = Path({str(tmp_path)!r}) / f"c{{i}}.sgy"
    p.write_bytes(bytes(b))
    try:
        c = open_cube(p); c[:]
    except SeisfmError:
        pass
print("done")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done" in out.stdout


def test_prestack_refused(shared_data):
    _expect_clear_error(shared_data / "segyio-test" / "small-ps.sgy", "pre-stack")


def test_long_file_without_geometry_opens_as_traces(shared_data):
    with pytest.warns(UserWarning, match="no usable inline/crossline"):
        cube = open_cube(shared_data / "segyio-test" / "long.sgy")
    assert cube.shape == (1, 3, 60000)
    assert cube.geometry.kind in ("traces", "2d")
    assert np.isfinite(cube[:, :, :1000]).all()


def test_reader_declines_broken_files(shared_data, tmp_path, reader_messages):
    from conftest import refused_with

    broken = shared_data / "segyio-test" / "broken.sgy"
    assert "truncated" in refused_with(get_reader(str(broken)), broken, reader_messages)
    assert get_reader(str(tmp_path / "x.txt")) is None  # not ours: declined silently
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert callable(get_reader(str(shared_data / "segyio-test" / "f3.sgy")))


@pytest.mark.parametrize("name", ["broken.sgy", "small-ps.sgy"])
def test_cli_exits_nonzero_without_traceback(shared_data, name):
    out = subprocess.run(
        [sys.executable, "-m", "napari_seisfm.cli", "info", str(shared_data / "segyio-test" / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("seisfm: error:") and name in out.stderr
