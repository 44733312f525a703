"""Feature stores with a known answer, for the dock and desk tests (one copy, not one per file)."""

from __future__ import annotations

import numpy as np

from napari_seisfm.store.grid import GridSpec
from napari_seisfm.store.volume import FeatureVolume


def two_region_store(path, geometry, stride, *, dim: int = 8, seed: int = 1):
    """A complete store on ``geometry``'s cube whose vectors form two well separated clusters: the upper
    and the lower half of the grid in time. Returns the store's path."""
    grid = GridSpec.for_cube(geometry.shape, stride)
    fv = FeatureVolume.create(
        path,
        grid=grid,
        dim_in=dim,
        dtype="int8",
        model="test",
        chunks=(8, 8, 8),
        cube_fingerprint=geometry.fingerprint(),
        cube_summary=geometry.summary(),
    )
    rng = np.random.default_rng(seed)
    for idx, region in fv.chunk_slices():
        shape = tuple(s.stop - s.start for s in region)
        upper = np.arange(region[2].start, region[2].stop) < grid.shape[2] // 2
        v = rng.normal(0, 0.1, shape + (dim,))
        v[..., 0] += upper
        v[..., 1] += ~upper
        fv.write_chunk(idx, v)
    fv.mark_complete()
    return path
