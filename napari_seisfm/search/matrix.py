"""FeatureMatrix: a feature volume prepared once for search.

All vectors sit in RAM as one C-contiguous ``(N, dim)`` matrix in the stored dtype (int8 256^3 x 64 is
1.07 GB), N running over the grid in (inline, crossline, time) order, plus the valid mask. Invalid rows
(dead traces, NaN embeddings) hold zeros and are reported as "no value" (NaN) in every map.
"""

from __future__ import annotations

import numpy as np

from ..cube import Geometry, geometry_from_summary
from ..errors import SeisfmError
from ..store.encoding import DTYPES, decode_vectors, encode_vectors
from ..store.grid import GridSpec
from ..store.volume import FeatureVolume
from .kernels import DotKernel

SPACES = ("grid", "cube", "survey")


class FeatureMatrix:
    """The whole feature volume as one matrix; build with :meth:`open`, :meth:`from_volume` or :meth:`from_array`."""

    def __init__(
        self,
        vectors: np.ndarray,
        valid: np.ndarray,
        grid: GridSpec,
        *,
        quant_scale: float = 1.0,
        cube_summary: dict | None = None,
        fingerprint: str | None = None,
        name: str = "features",
    ):
        if vectors.ndim != 2 or len(vectors) != grid.size or valid.shape != (grid.size,):
            raise ValueError(f"vectors {vectors.shape} / valid {valid.shape} do not fit grid {grid.shape}")
        self.vectors = np.ascontiguousarray(vectors)
        self.valid = np.asarray(valid, bool)
        self.grid = grid
        self.dtype = str(self.vectors.dtype)
        self.dim = int(self.vectors.shape[1])
        self.quant_scale = float(quant_scale) if self.dtype == "int8" else 1.0
        self.cube_summary = dict(cube_summary or {})  # Geometry.summary() of the cube; cube_geometry: the Geometry
        self.fingerprint = fingerprint
        self.name = name
        self.invalid_index = np.flatnonzero(~self.valid)  # few: filling NaN there is cheap
        self._kernels: dict = {}
        self._geometry: Geometry | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, path, *, cube=None, fingerprint: str | None = None) -> FeatureMatrix:
        """Load a complete feature store; with ``cube`` (or its fingerprint) refuse one from another cube
        (``cube`` also compares the hash of sampled traces, which tells cubes of one geometry apart)."""
        return cls.from_volume(FeatureVolume.open(path), cube=cube, fingerprint=fingerprint)

    @classmethod
    def from_volume(cls, fv: FeatureVolume, *, cube=None, fingerprint: str | None = None) -> FeatureMatrix:
        if cube is not None:  # geometry, and sampled traces when the store recorded them
            fv.check_cube(cube)
        elif fingerprint is not None:
            fv.check_matches(fingerprint)
        vectors, valid = fv.load()  # damaged chunks come back invalid, with a StoreWarning
        return cls(
            vectors,
            valid,
            fv.grid,
            quant_scale=fv.quant_scale,
            cube_summary=fv.cube_summary,
            fingerprint=fv.cube_fingerprint,
            name=str(fv.path),
        )

    @classmethod
    def from_array(
        cls,
        vectors,
        grid,
        *,
        valid=None,
        dtype: str | None = None,
        quant_scale: float = 127.0,
        cube_summary: dict | None = None,
        fingerprint: str | None = None,
    ) -> FeatureMatrix:
        """In-memory vectors ``(N, dim)`` or ``(gi, gx, gt, dim)`` on ``grid`` (a GridSpec or a grid shape).

        Float input is L2-normalised (rows with NaN/inf or zero norm become invalid) and stored as ``dtype``
        (default: its own float dtype); integer input is taken as already stored int8 values.
        """
        if not isinstance(grid, GridSpec):
            grid = GridSpec(tuple(int(n) for n in grid), (1, 1, 1))
        v = np.asarray(vectors)
        v = v.reshape(grid.size, -1)
        ok = np.ones(grid.size, bool) if valid is None else np.asarray(valid, bool).reshape(-1).copy()
        if v.dtype.kind == "f":
            dtype = dtype or ("float16" if v.dtype == np.float16 else "float32")
            v, finite = encode_vectors(v, dtype, quant_scale)
            ok &= finite
        elif v.dtype != np.int8:
            raise SeisfmError(f"feature vectors must be float or int8, got {v.dtype}")
        if str(v.dtype) not in DTYPES:
            raise SeisfmError(f"feature dtype must be one of {DTYPES}, got {v.dtype}")
        if not ok.all():
            v = v.copy()  # never write into the caller's array
            v[~ok] = 0
        return cls(v, ok, grid, quant_scale=quant_scale, cube_summary=cube_summary, fingerprint=fingerprint)

    # ------------------------------------------------------------------ grid and coordinates
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.shape

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.valid.nbytes)

    def cube_shape(self) -> tuple[int, int, int]:
        """The cube's shape from the stored geometry, else the smallest cube the grid covers."""
        shape = self.cube_summary.get("shape")
        if shape is not None and len(shape) == 3:
            return tuple(int(n) for n in shape)
        return tuple(int(c) + 1 for c in self.grid.cube_index(np.asarray(self.grid.shape) - 1))

    @property
    def cube_geometry(self) -> Geometry:
        """The cube's survey numbering (from the store's summary); a SeisfmError when the store has none."""
        if self._geometry is None:
            try:
                self._geometry = geometry_from_summary(self.cube_summary)
            except SeisfmError:
                raise SeisfmError(
                    f"{self.name}: the feature store has no usable cube geometry; "
                    "give grid or cube indices instead of survey coordinates"
                ) from None
        return self._geometry

    def grid_to_survey(self, grid_index) -> tuple[float, float, float] | None:
        """Survey coordinates of a grid point, or None when the store has no geometry."""
        try:
            return self.cube_geometry.to_survey(self.grid.cube_index(np.asarray(grid_index)))
        except SeisfmError:
            return None

    def to_grid(self, point, space: str = "grid") -> tuple[int, int, int]:
        """Snap a point to the nearest grid point; a point outside the volume is a SeisfmError.

        ``space``: ``"grid"`` (grid indices), ``"cube"`` (cube sample indices, e.g. napari data coordinates
        of a layer on the cube grid) or ``"survey"`` (inline number, crossline number, time/depth).
        """
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        p = np.asarray(point, float).reshape(-1)
        if p.shape != (3,) or not np.isfinite(p).all():
            raise SeisfmError(f"point {tuple(point)!r}: need three finite coordinates (inline, crossline, time)")
        if space == "survey":
            p, space = self.cube_geometry.to_index(p), "cube"
        if space == "cube":
            hi = np.asarray(self.cube_shape()) - 1
            if (p < -0.5).any() or (p > hi + 0.5).any():
                raise SeisfmError(f"point {_fmt(p)} (cube index) is outside the volume: valid 0..{tuple(int(h) for h in hi)}")
            return tuple(int(g) for g in self.grid.grid_index(p))
        hi = np.asarray(self.grid.shape) - 1
        g = np.rint(p)
        if (g < 0).any() or (g > hi).any():
            raise SeisfmError(f"point {_fmt(p)} (grid index) is outside the feature grid: valid 0..{tuple(int(h) for h in hi)}")
        return tuple(int(x) for x in g)

    def flat(self, grid_index) -> int:
        return int(np.ravel_multi_index(tuple(int(i) for i in grid_index), self.grid.shape))

    def unflat(self, flat_index) -> tuple[int, int, int]:
        return tuple(int(i) for i in np.unravel_index(int(flat_index), self.grid.shape))

    # ------------------------------------------------------------------ vectors
    def decode(self, rows: np.ndarray) -> np.ndarray:
        """Stored rows -> float32 unit vectors (:func:`~napari_seisfm.store.encoding.decode_vectors`)."""
        return decode_vectors(rows, self.dtype, self.quant_scale)

    def vector(self, grid_index) -> np.ndarray:
        """The float32 (unit) vector at a grid point; an invalid point is a SeisfmError."""
        i = self.flat(grid_index)
        if not self.valid[i]:
            raise SeisfmError(f"grid point {tuple(grid_index)} has no valid embedding (dead trace or NaN); click elsewhere")
        return self.decode(self.vectors[i])

    def kernel(self, kernel: str = "auto", threads: int | None = None) -> DotKernel:
        key = (kernel, threads)
        if key not in self._kernels:
            self._kernels[key] = DotKernel(self.vectors, quant_scale=self.quant_scale, kernel=kernel, threads=threads)
        return self._kernels[key]

    def dots(
        self, query: np.ndarray, out: np.ndarray | None = None, *, kernel: str = "auto", threads: int | None = None
    ) -> np.ndarray:
        """``decode(vectors) @ query`` for every grid point, float32 ``(N,)``; invalid points NaN."""
        out = self.kernel(kernel, threads)(query, out)
        out[self.invalid_index] = np.nan
        return out

    def __repr__(self) -> str:
        return f"FeatureMatrix({self.name}, grid={self.grid.shape}, dim={self.dim}, {self.dtype}, {int(self.valid.sum())} valid)"


def _fmt(p) -> str:
    return "(" + ", ".join(f"{x:g}" for x in p) + ")"
