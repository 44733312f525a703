"""napari writer: an Image or Labels layer on a cube's grid -> SEG-Y (source headers), .sgz or .npy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cube import Cube, geometry_from_summary
from ..errors import SeisfmError
from ..export import export_volume
from ..io import open_cube


def source_cube(metadata: dict, data_shape) -> Cube:
    """The cube a layer belongs to: its source file when known, else its recorded geometry."""
    path = metadata.get("path") or metadata.get("source_path")
    if path and Path(path).exists():
        return open_cube(path)
    if "geometry" in metadata:
        geometry = geometry_from_summary(metadata["geometry"])
        return Cube.from_array(_placeholder(geometry.shape), geometry)
    raise SeisfmError("the layer has no seismic geometry: open a cube with napari-seisfm first")


def _placeholder(shape):
    return np.broadcast_to(np.float32(0), shape)  # geometry carrier only, never read


def write_layer(path: str, data, meta: dict) -> list[str]:
    metadata = meta.get("metadata", {}) or {}
    data = np.asarray(data)
    if data.ndim != 3:
        raise SeisfmError(f"{path}: only 3-D layers on a cube grid can be exported, got {data.ndim}-D")
    grid = metadata.get("grid", {})
    with source_cube(metadata, data.shape) as cube:
        out = export_volume(
            path,
            data,
            cube,
            stride=tuple(grid.get("stride", (1, 1, 1))),
            origin=tuple(grid.get("origin", (0, 0, 0))),
            labels=meta.get("layer_type") == "labels" or np.issubdtype(data.dtype, np.integer),
        )
    return [str(out)]


def write_image(path: str, data, meta: dict) -> list[str]:
    return write_layer(path, data, {**meta, "layer_type": "image"})


def write_labels(path: str, data, meta: dict) -> list[str]:
    return write_layer(path, data, {**meta, "layer_type": "labels"})
