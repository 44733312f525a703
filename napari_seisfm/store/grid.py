"""The feature grid: where the embeddings sit on the cube (cube index <-> grid index), and its chunks.

A grid point ``(a, b, c)`` sits at cube index ``origin + stride * (a, b, c)``; this module is the one
place that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SeisfmError


@dataclass(frozen=True)
class GridSpec:
    """Where the embeddings sit on the cube: every ``stride``-th sample from ``origin``."""

    shape: tuple[int, int, int]
    stride: tuple[int, int, int]
    origin: tuple[int, int, int] = (0, 0, 0)

    @classmethod
    def for_cube(cls, cube_shape, stride) -> GridSpec:
        stride = _triple(stride)
        shape = tuple(-(-int(n) // s) for n, s in zip(cube_shape, stride))
        return cls(shape=shape, stride=stride)

    def cube_index(self, grid_index) -> np.ndarray:
        """Cube indices of grid points (last axis of length 3)."""
        return np.asarray(self.origin) + np.asarray(self.stride) * np.asarray(grid_index)

    def cube_lines(self, axis: int, grid_slice: slice) -> np.ndarray:
        """Cube indices along ``axis`` of the grid points ``grid_slice`` (a slice of grid indices)."""
        return self.origin[axis] + self.stride[axis] * np.arange(grid_slice.start, grid_slice.stop)

    def grid_index(self, cube_index) -> np.ndarray:
        """Nearest grid point to fractional cube indices (last axis of length 3), clipped."""
        g = np.rint((np.asarray(cube_index, float) - self.origin) / np.asarray(self.stride))
        return np.clip(g, 0, np.asarray(self.shape) - 1).astype(int)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def check_stride(cube_shape, stride, source="the cube") -> tuple[int, int, int]:
    """``stride`` as three integers, refused when longer than the cube along an axis that has more than one
    sample: such a grid is one point along it, which is never what was meant (``--stride 1000000`` used to end
    in a PCA error suggesting ``--pca 0``)."""
    stride = _triple(stride)
    for axis, (n, s) in enumerate(zip(cube_shape, stride)):
        if n > 1 and s > n:
            name = ("inline", "crossline", "sample")[axis]
            raise SeisfmError(
                f"stride {s} along {name} is longer than {source} ({int(n)} samples along it); "
                f"use a stride of at most {int(n)}, e.g. --stride 4"
            )
    return stride


def _triple(v) -> tuple[int, int, int]:
    if np.isscalar(v):
        v = (v, v, v)
    try:
        t = tuple(int(x) for x in v)
    except (TypeError, ValueError, OverflowError):
        t = ()
    if len(t) != 3 or min(t) < 1:
        raise SeisfmError(f"stride must be one positive integer or three, got {v!r}")
    return t


def chunk_counts(grid_shape, chunks) -> tuple[int, int, int]:
    """Chunks along each axis when a grid of ``grid_shape`` is cut into ``chunks`` (the last ones shorter)."""
    return tuple(-(-int(n) // int(c)) for n, c in zip(grid_shape, chunks))


def chunk_region(chunk_index, chunks, grid_shape) -> tuple[slice, slice, slice]:
    """The grid slices of chunk ``chunk_index`` when the grid is cut into ``chunks`` (the last ones shorter)."""
    return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(chunk_index, chunks, grid_shape))


def live_points(dead, grid: GridSpec, region) -> np.ndarray:
    """Which grid points of ``region`` (grid slices) are not on dead traces (``dead``: the cube's
    ``(inline, crossline)`` mask, or None)."""
    shape = tuple(sl.stop - sl.start for sl in region)
    valid = np.ones(shape, bool)
    if dead is not None:
        il, xl = grid.cube_lines(0, region[0]), grid.cube_lines(1, region[1])
        valid &= ~np.asarray(dead, bool)[np.ix_(il, xl)][..., None]
    return valid
