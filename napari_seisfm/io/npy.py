"""``.npy`` cubes, memory-mapped, with an optional JSON side-car (``<name>.npy.json``) for geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..cube import ArrayBackend, Cube, Geometry, geometry_from_summary, mask_nonfinite_traces
from ..errors import SeisfmError
from .output import atomic_output, prepare_output


def sidecar(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def open_npy(path) -> Cube:
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise SeisfmError(f"{path}: not a readable .npy array ({' '.join(str(exc).split())})") from None
    if array.ndim == 2:  # a 2D section (traces, samples)
        array = array[None]
    if array.ndim != 3:
        raise SeisfmError(f"{path}: a cube must be 2-D or 3-D, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise SeisfmError(f"{path}: unsupported dtype {array.dtype}")
    meta = sidecar(path)
    if meta.exists():
        try:
            geometry = geometry_from_summary(json.loads(meta.read_text()))
        except (ValueError, SeisfmError) as exc:
            raise SeisfmError(f"{meta}: bad geometry side-car ({exc})") from None
        if geometry.shape != array.shape:
            raise SeisfmError(f"{meta}: geometry {geometry.shape} does not match {path.name} {array.shape}")
    else:
        geometry = Geometry.regular(
            array.shape, first_inline=0, first_crossline=0, sample_interval=1.0, sample_unit="samples", source=str(path)
        )
    geometry = Geometry(**{**geometry.__dict__, "source": str(path)})
    try:
        return mask_nonfinite_traces(Cube(ArrayBackend(array), geometry, path, {"format": f"numpy {array.dtype}"}))
    except OSError as exc:  # a memory-mapped file shorter than its header says
        raise SeisfmError(f"{path}: cannot read its data ({' '.join(str(exc).split())})") from None


def write_npy(path, data: np.ndarray, geometry: Geometry | None = None) -> Path:
    """``data`` as ``.npy``, atomically, with ``geometry`` in the JSON side-car when given and of its shape:
    the one ``.npy`` writer (cubes, maps, classes)."""
    path = prepare_output(path)
    with atomic_output(path) as tmp:
        np.save(tmp, np.asarray(data))
    if geometry is not None and tuple(geometry.shape) == tuple(np.shape(data)):
        with atomic_output(sidecar(path)) as tmp:
            tmp.write_text(json.dumps(geometry.summary(), indent=1))
    return path
