"""Reading and writing seismic files: one module per format (``segy``, ``sgz``, ``npy``), :func:`open_cube`
dispatching on the suffix, and :mod:`~napari_seisfm.io.output` for every writer (atomic outputs, one-line
write errors). The formats build on :mod:`napari_seisfm.cube`; ``cube`` never imports ``io``."""

from __future__ import annotations

from pathlib import Path

from ..cube import Cube
from ..errors import SeisfmError

SUFFIXES = (".sgy", ".segy", ".sgz", ".npy")


def open_cube(path, **kw) -> Cube:
    """Open a SEG-Y (``.sgy``, ``.segy``), seismic-zfp (``.sgz``) or ``.npy`` file as a Cube."""
    path = Path(path)
    if not path.exists():
        raise SeisfmError(f"{path}: no such file")
    if path.is_dir():
        raise SeisfmError(f"{path}: is a directory, not a seismic file")
    suffix = path.suffix.lower()
    if suffix in (".sgy", ".segy"):
        from .segy import open_segy

        return open_segy(path, **kw)
    if suffix == ".sgz":
        from .sgz import open_sgz

        return open_sgz(path, **kw)
    if suffix == ".npy":
        from .npy import open_npy

        return open_npy(path, **kw)
    raise SeisfmError(f"{path}: unsupported file type {suffix or '(none)'}; expected .sgy, .segy, .sgz or .npy")
