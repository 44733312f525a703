"""io.output.atomic_output, the one temp-and-rename writer: what is left at the path and beside it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_seisfm.errors import SeisfmCancelled, SeisfmError
from napari_seisfm.io.output import atomic_output, partial_path


def test_written_whole_then_renamed(tmp_path):
    out = tmp_path / "m.npy"
    with atomic_output(out) as tmp:
        assert tmp == partial_path(out) == tmp_path / "m.npy.partial.npy"
        np.save(tmp, np.arange(5))  # np.save keeps a name that ends in .npy as it is
        assert not out.exists()  # nothing at the path until the block ends
    np.testing.assert_array_equal(np.load(out), np.arange(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy"]


def test_replaces_an_old_file_and_an_old_folder(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with atomic_output(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"
    folder = tmp_path / "m.zarr"
    (folder / "old").mkdir(parents=True)
    with atomic_output(folder) as tmp:
        (tmp / "new").mkdir(parents=True)
    assert [p.name for p in folder.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "m.zarr"]


@pytest.mark.parametrize("error", [SeisfmCancelled("stopped"), ValueError("bad data"), KeyboardInterrupt()])
def test_any_error_leaves_the_old_output_and_no_temporary(tmp_path, error):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(type(error)), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise error
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_an_oserror_is_one_line_naming_the_output(tmp_path):
    out = tmp_path / "m.npy"
    with pytest.raises(SeisfmError) as err, atomic_output(out) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(28, os.strerror(28), str(tmp))
    assert str(err.value) == f"{out}: cannot write it ({os.strerror(28)})"
    assert ".partial" not in str(err.value) and not list(tmp_path.iterdir())


def test_a_caller_words_its_own_error(tmp_path):
    out = tmp_path / "w.safetensors"
    with pytest.raises(RuntimeError, match="resume"):  # noqa: SIM117
        with atomic_output(out, failed=lambda path, exc: RuntimeError(f"{path.name}: {exc.strerror}; resume")):
            raise OSError(30, os.strerror(30))
    with pytest.raises(OSError):  # ... or lets the OSError through as it was  # noqa: SIM117
        with atomic_output(out, failed=lambda path, exc: exc):
            raise OSError(30, os.strerror(30))
    assert not list(tmp_path.iterdir())


def test_a_leftover_of_a_killed_run_is_replaced(tmp_path):
    out = tmp_path / "m.sgy"
    partial_path(out).write_bytes(b"from a killed run")
    with atomic_output(out) as tmp:
        assert not tmp.exists()
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["m.sgy"]
