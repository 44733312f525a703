"""FeatureVolume: embeddings on a strided grid of a cube, in a chunked zarr store.

Layout (format ``seisfm-features``, version 1; docs/feature-store.md says the same):

- ``embeddings``: ``(gi, gx, gt, dim)``, int8, float16 or float32, chunked over the grid.
  Vectors are stored L2-normalised (after the optional PCA projection), so a dot product is a
  cosine; int8 stores hold ``round(v * quant_scale)``.
- ``valid``: ``(gi, gx, gt)`` bool; False for dead traces and non-finite embeddings.
- ``done``: one bool per chunk of the grid, for resuming an interrupted extraction.
- ``pca_mean`` ``(dim_in,)`` and ``pca_components`` ``(dim, dim_in)``, when reduced.
- attrs: grid shape/stride/origin, model id, checkpoint hash, cube fingerprint and geometry
  summary, normalisation, dtype, ``complete``.

A grid point ``(a, b, c)`` sits at cube index ``origin + stride * (a, b, c)``. The store is only
marked complete after every chunk has been written; readers refuse partial stores unless asked.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import SeisfmError

FORMAT = "seisfm-features"
VERSION = 1
DTYPES = ("int8", "float16", "float32")


@dataclass(frozen=True)
class GridSpec:
    """Where the embeddings sit on the cube: every ``stride``-th sample from ``origin``."""

    shape: tuple[int, int, int]
    stride: tuple[int, int, int]
    origin: tuple[int, int, int] = (0, 0, 0)

    @classmethod
    def for_cube(cls, cube_shape, stride) -> "GridSpec":
        stride = _triple(stride)
        shape = tuple(-(-int(n) // s) for n, s in zip(cube_shape, stride))
        return cls(shape=shape, stride=stride)

    def cube_index(self, grid_index) -> np.ndarray:
        return np.asarray(self.origin) + np.asarray(self.stride) * np.asarray(grid_index)

    def grid_index(self, cube_index) -> np.ndarray:
        """Nearest grid point to fractional cube indices (last axis of length 3), clipped."""
        g = np.rint((np.asarray(cube_index, float) - self.origin) / np.asarray(self.stride))
        return np.clip(g, 0, np.asarray(self.shape) - 1).astype(int)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def _triple(v) -> tuple[int, int, int]:
    if np.isscalar(v):
        v = (v, v, v)
    t = tuple(int(x) for x in v)
    if len(t) != 3 or min(t) < 1:
        raise SeisfmError(f"stride must be one positive integer or three, got {v!r}")
    return t


class FeatureVolume:
    """A feature store on disk. Create it with :meth:`create`, open it with :meth:`open`."""

    def __init__(self, group, path: Path):
        self._group = group
        self.path = Path(path)
        a = group.attrs
        self.grid = GridSpec(tuple(a["grid_shape"]), tuple(a["stride"]), tuple(a["origin"]))
        self.dim = int(a["dim"])
        self.dtype = str(a["dtype"])
        self.model = str(a["model"])
        self.checkpoint_sha256 = a.get("checkpoint_sha256")
        self.cube_fingerprint = str(a["cube_fingerprint"])
        self.cube_geometry = dict(a.get("cube_geometry", {}))
        self.normalisation = dict(a.get("normalisation", {}))
        self.quant_scale = float(a.get("quant_scale", 1.0))
        self.chunks = tuple(a["chunks"])
        self.embeddings = group["embeddings"]
        self.valid = group["valid"]
        self._done = group["done"]
        if "pca_components" in group:
            self.pca_mean = np.asarray(group["pca_mean"][:], np.float32)
            self.pca_components = np.asarray(group["pca_components"][:], np.float32)
        else:
            self.pca_mean = self.pca_components = None

    # ---------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        path,
        *,
        grid: GridSpec,
        dim_in: int,
        dtype: str = "int8",
        model: str,
        cube_fingerprint: str,
        cube_geometry: dict | None = None,
        checkpoint_sha256: str | None = None,
        normalisation: dict | None = None,
        pca: tuple[np.ndarray, np.ndarray] | None = None,
        quant_scale: float | None = None,
        chunks: tuple[int, int, int] = (16, 16, 16),
        overwrite: bool = False,
    ) -> "FeatureVolume":
        """Start a new store; with ``overwrite=False`` an existing path is an error."""
        import zarr

        path = Path(path)
        if dtype not in DTYPES:
            raise SeisfmError(f"feature dtype must be one of {DTYPES}, got {dtype!r}")
        if path.exists():
            if not overwrite:
                raise SeisfmError(f"{path}: already exists (pass overwrite/--overwrite, or resume)")
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        dim = dim_in
        if pca is not None:
            mean, components = (np.asarray(x, np.float32) for x in pca)
            if components.ndim != 2 or components.shape[1] != dim_in or mean.shape != (dim_in,):
                raise SeisfmError(f"PCA basis {components.shape} does not fit {dim_in}-d embeddings")
            dim = components.shape[0]
        if dtype == "int8" and not quant_scale:
            quant_scale = 127.0  # unit vectors: every component lies in [-1, 1]
        chunks = tuple(min(c, n) for c, n in zip(chunks, grid.shape))
        group = zarr.open_group(str(path), mode="w")
        group.attrs.update(
            {
                "format": FORMAT,
                "version": VERSION,
                "complete": False,
                "grid_shape": list(grid.shape),
                "stride": list(grid.stride),
                "origin": list(grid.origin),
                "chunks": list(chunks),
                "dim": dim,
                "dim_in": dim_in,
                "dtype": dtype,
                "model": model,
                "checkpoint_sha256": checkpoint_sha256,
                "cube_fingerprint": cube_fingerprint,
                "cube_geometry": cube_geometry or {},
                "normalisation": normalisation or {},
                "quant_scale": float(quant_scale or 1.0),
                "normalized": True,
            }
        )
        group.create_array("embeddings", shape=(*grid.shape, dim), chunks=(*chunks, dim), dtype=dtype, fill_value=0)
        group.create_array("valid", shape=grid.shape, chunks=chunks, dtype=bool, fill_value=False)
        n_chunks = tuple(-(-n // c) for n, c in zip(grid.shape, chunks))
        group.create_array("done", shape=n_chunks, chunks=n_chunks, dtype=bool, fill_value=False)
        if pca is not None:
            group.create_array("pca_mean", data=mean)
            group.create_array("pca_components", data=components)
        return cls(group, path)

    @classmethod
    def open(cls, path, *, allow_partial: bool = False, mode: str = "r") -> "FeatureVolume":
        import zarr

        path = Path(path)
        if not path.exists():
            raise SeisfmError(f"{path}: no such feature store")
        try:
            group = zarr.open_group(str(path), mode=mode)
            fmt = group.attrs.get("format")
        except Exception as exc:  # zarr raises many types for non-stores
            raise SeisfmError(f"{path}: not a feature store ({exc.__class__.__name__})") from None
        if fmt != FORMAT:
            raise SeisfmError(f"{path}: not a napari-seisfm feature store")
        if int(group.attrs.get("version", 0)) > VERSION:
            raise SeisfmError(f"{path}: feature store version {group.attrs['version']} is newer than this napari-seisfm")
        fv = cls(group, path)
        if not allow_partial and not fv.complete:
            done, total = fv.progress()
            raise SeisfmError(f"{path}: extraction incomplete ({done}/{total} chunks); resume it with `seisfm embed`")
        return fv

    # ---------------------------------------------------------------- state
    @property
    def complete(self) -> bool:
        return bool(self._group.attrs.get("complete", False))

    def progress(self) -> tuple[int, int]:
        done = np.asarray(self._done[...])
        return int(done.sum()), int(done.size)

    def chunk_slices(self) -> Iterator[tuple[tuple[int, int, int], tuple[slice, slice, slice]]]:
        """Every chunk of the grid, as (chunk index, grid slices), in storage order."""
        for idx in itertools.product(*(range(n) for n in self._done.shape)):
            yield idx, self.chunk_region(idx)

    def chunk_region(self, chunk_index) -> tuple[slice, slice, slice]:
        return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(chunk_index, self.chunks, self.grid.shape))

    def chunk_done(self, chunk_index) -> bool:
        return bool(self._done[tuple(chunk_index)])

    def write_chunk(self, chunk_index, vectors: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Store raw float embeddings ``(a, b, c, dim_in)`` for one chunk, then mark it done."""
        sl = self.chunk_region(chunk_index)
        expect = tuple(s.stop - s.start for s in sl)
        if vectors.shape[:3] != expect:
            raise ValueError(f"chunk {chunk_index} expects {expect} grid points, got {vectors.shape[:3]}")
        stored, ok = self.encode(vectors)
        if valid is not None:
            ok &= valid
        stored[~ok] = 0
        self.embeddings[sl] = stored
        self.valid[sl] = ok
        self._done[tuple(chunk_index)] = True  # only after the data is written

    def mark_complete(self) -> None:
        done, total = self.progress()
        if done != total:
            raise SeisfmError(f"{self.path}: cannot mark complete, {total - done} chunks missing")
        self._group.attrs["complete"] = True

    # ---------------------------------------------------------------- vectors
    def encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw embeddings -> (stored values, finite mask): PCA, L2 normalisation, quantisation."""
        v = np.asarray(vectors, np.float32)
        ok = np.isfinite(v).all(axis=-1)
        v = np.where(ok[..., None], v, 0.0)
        if self.pca_components is not None:
            v = (v - self.pca_mean) @ self.pca_components.T
        norm = np.linalg.norm(v, axis=-1, keepdims=True)
        ok &= norm[..., 0] > 0
        v = v / np.maximum(norm, 1e-12)
        if self.dtype == "int8":
            return np.clip(np.rint(v * self.quant_scale), -127, 127).astype(np.int8), ok
        return v.astype(self.dtype), ok

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values -> float32 unit vectors (approximately unit for int8)."""
        v = np.asarray(stored, np.float32)
        return v / self.quant_scale if self.dtype == "int8" else v

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Raw embeddings (e.g. of a new click computed on the fly) into the stored space, float32."""
        stored, _ = self.encode(vectors)
        return self.decode(stored)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All vectors as a C-contiguous ``(N, dim)`` array in the stored dtype, and the ``(N,)`` valid mask.

        N runs over the grid in (inline, crossline, time) order. This is what search works on;
        an int8 256^3 x 64 grid is 1.07 GB.
        """
        return np.ascontiguousarray(self.embeddings[...]).reshape(-1, self.dim), np.asarray(self.valid[...]).reshape(-1)

    # ---------------------------------------------------------------- checks
    def check_matches(self, fingerprint: str, what: str = "the cube") -> None:
        if fingerprint != self.cube_fingerprint:
            geo = self.cube_geometry
            raise SeisfmError(
                f"{self.path}: feature volume was extracted from another cube ({geo.get('source', '?')}, "
                f"shape {geo.get('shape', '?')}); it does not match {what}"
            )

    def __repr__(self) -> str:
        state = "complete" if self.complete else "partial"
        return f"FeatureVolume({self.path}, grid={self.grid.shape}, stride={self.grid.stride}, dim={self.dim}, {self.dtype}, {self.model}, {state})"
