"""Writing search results: on the feature grid (.npy, .zarr) or, given the cube, at full resolution
with the source headers (.sgy/.segy/.sgz, or .npy/.zarr with ``full_resolution``) via export.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SeisfmError
from .matrix import FeatureMatrix

GRID_FORMATS = (".npy", ".zarr")
CUBE_FORMATS = (".sgy", ".segy", ".sgz")


def write_map(
    path, data: np.ndarray, features: FeatureMatrix, *, cube=None, labels: bool = False, full_resolution: bool = False
) -> Path:
    """Write a map on the feature grid; SEG-Y/.sgz (and ``full_resolution``) need the cube and go to its grid."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in GRID_FORMATS + CUBE_FORMATS:
        raise SeisfmError(f"{path}: unsupported output format {suffix or '(none)'}; use .npy, .zarr, .sgy, .segy or .sgz")
    if suffix in CUBE_FORMATS or full_resolution:
        if cube is None:
            raise SeisfmError(f"{path}: writing on the cube grid ({suffix}) needs the cube: pass --cube")
        from ..export import export_volume

        return export_volume(path, data, cube, stride=features.grid.stride, origin=features.grid.origin, labels=labels)
    from ..export import write_array

    return write_array(
        path,
        data,
        {
            "grid_shape": list(features.grid.shape),
            "stride": list(features.grid.stride),
            "origin": list(features.grid.origin),
            "geometry": features.cube_summary,
        },
    )


def optional_cube(cube_path):
    """The cube of ``--cube`` opened, or None without one; ``FeatureMatrix.open(store, cube=...)`` checks that
    the store was computed from it (fingerprint)."""
    if not cube_path:
        return None
    from ..io import open_cube

    return open_cube(cube_path)
