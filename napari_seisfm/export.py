"""Export of maps and labels on a cube's grid: SEG-Y with the source headers, .sgz, .npy, zarr.

Overlays live on the strided feature grid; they are brought to full resolution here, at export
and only then, so the viewer never holds an upsampled copy. :func:`write_array` writes
.npy/.zarr maps and classes (feature grid or cube grid); every format is written through
:func:`~napari_seisfm.io.output.atomic_output`, so an interrupted export never leaves a file that looks finished.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cube import Cube
from .errors import SeisfmError
from .io.output import atomic_output, prepare_output
from .progress import check, report

FORMATS = (".sgy", ".segy", ".sgz", ".npy", ".zarr")


def to_cube_grid(
    data: np.ndarray, cube_shape, stride=(1, 1, 1), origin=(0, 0, 0), *, labels: bool = False, progress=None, cancel=None
) -> np.ndarray:
    """Nearest (labels) or linear (maps) interpolation from a strided grid to every cube sample;
    ``progress(done, total)`` in inlines, ``cancel`` checked between them."""
    from scipy.ndimage import map_coordinates

    data = np.asarray(data)
    if tuple(data.shape) == tuple(cube_shape) and tuple(stride) == (1, 1, 1):
        return data
    axes = [np.clip((np.arange(n) - o) / s, 0, g - 1) for n, s, o, g in zip(cube_shape, stride, origin, data.shape)]
    if labels:
        idx = np.ix_(*[np.rint(a).astype(int) for a in axes])
        return data[idx]
    out = np.empty(cube_shape, np.float32)
    src = np.nan_to_num(data.astype(np.float32))
    for i, a in enumerate(axes[0]):  # slab by slab keeps the coordinate arrays small
        check(cancel, "export stopped; nothing was written")
        report(progress, i, len(axes[0]))
        grid = np.meshgrid([a], axes[1], axes[2], indexing="ij")
        out[i] = map_coordinates(src, np.stack([g.ravel() for g in grid]), order=1, mode="nearest").reshape(cube_shape[1:])
    return out


def export_volume(
    path, data: np.ndarray, cube: Cube, *, stride=(1, 1, 1), origin=(0, 0, 0), labels: bool = False, progress=None, cancel=None
) -> Path:
    """Write ``data`` (on the cube grid, or on a strided grid of it) in the format its suffix names.
    ``progress(done, total, phase)``: the interpolation to the cube grid, then the SEG-Y traces; ``cancel``
    stops it with nothing left at ``path`` (the partial file is removed)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SeisfmError(f"{path}: unsupported export format {suffix or '(none)'}; use one of {', '.join(FORMATS)}")
    segy = suffix in (".sgy", ".segy")
    share = 0.5 if segy else 1.0  # of the bar: interpolating, then (SEG-Y) writing trace by trace

    def phase(offset, name):
        return None if progress is None else (lambda d, t: progress(offset + share * d / max(t, 1), 1.0, name))

    full = to_cube_grid(
        data, cube.shape, stride, origin, labels=labels, progress=phase(0.0, "resampling to the cube grid"), cancel=cancel
    )
    check(cancel, "export stopped; nothing was written")
    if labels:
        full = full.astype(np.int32)
    if segy:
        from .io.segy import write_like

        return write_like(path, full, cube, progress=phase(0.5, f"writing {path.name}"), cancel=cancel)
    if suffix == ".sgz":
        from .io.sgz import write_sgz

        return write_sgz(path, full, cube.geometry, bits_per_voxel=16 if labels else 8)
    if suffix == ".npy":
        from .io.npy import write_npy

        return write_npy(path, full, cube.geometry)
    return write_array(path, full, {"geometry": cube.geometry.summary()})


def write_array(path, data: np.ndarray, attrs: dict | None = None) -> Path:
    """``data`` as .npy (through :func:`~napari_seisfm.io.npy.write_npy`, the one .npy writer; ``attrs`` are
    not kept) or .zarr (with ``attrs``), atomically (:func:`~napari_seisfm.io.output.atomic_output`)."""
    path = prepare_output(path, folder_ok=str(path).lower().endswith(".zarr"))
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".zarr"):
        raise SeisfmError(f"{path}: unsupported format {suffix or '(none)'}; use .npy or .zarr")
    if suffix == ".npy":
        from .io.npy import write_npy

        return write_npy(path, data)
    import zarr

    with atomic_output(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        group.create_array("data", data=np.asarray(data))
        group.attrs.update(attrs or {})
    return path
