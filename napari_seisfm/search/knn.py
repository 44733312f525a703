"""kNN segmentation: a few labelled grid points per class -> a class for every grid point.

Support set: the stored vectors at labelled grid points (class ids > 0; 0 = unlabelled). For a grid
point x, its k nearest support vectors by cosine (``1 - x.s``, exact search in a usearch ``Index`` over
the support set, metric "ip", dtype matching the store) vote:

- plain:    vote_c = #{neighbours of class c} / k
- weighted: vote_c = sum_{neighbours of class c} w / sum w,  w = 1 / (1 - x.s + 1e-3)

``probabilities[..., j]`` is vote of ``class_ids[j]`` (they sum to 1), the class is the argmax (ties go
to the smaller class id), ``confidence`` its vote. Grid points without a valid embedding get class 0,
probabilities 0 and confidence NaN. No HNSW graph is built: the index holds only the support set and
every query is searched exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import SeisfmCancelled, SeisfmError
from ..features import GridSpec
from .kernels import default_threads
from .matrix import FeatureMatrix

USEARCH_DTYPE = {"int8": "i8", "float16": "f16", "float32": "f32"}


@dataclass
class KnnResult:
    """Class map, per-class probabilities and confidence for a region of the grid (or the whole grid)."""

    classes: np.ndarray  # int32, class id per grid point, 0 = no value
    probabilities: np.ndarray  # float32 (..., len(class_ids)), sums to 1 where valid
    confidence: np.ndarray  # float32, probability of the chosen class, NaN = no value
    class_ids: tuple[int, ...]
    region: tuple[slice, slice, slice]  # where this sits on the feature grid


# ---------------------------------------------------------------------- support sets
def support_from_points(features: FeatureMatrix, points, classes, *, space: str = "grid") -> tuple[np.ndarray, np.ndarray]:
    """Class-tagged points (any space of :meth:`FeatureMatrix.to_grid`) -> (grid indices (M, 3), classes (M,))."""
    pts = np.asarray([features.to_grid(p, space) for p in np.asarray(points, float).reshape(-1, 3)], int).reshape(-1, 3)
    cls = np.asarray(classes, int).reshape(-1)
    if len(cls) != len(pts):
        raise SeisfmError(f"{len(pts)} points but {len(cls)} class ids")
    return pts, cls


def support_from_labels(labels: np.ndarray, grid: GridSpec, *, cube_shape=None, name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """A label volume on the feature grid or on the cube grid -> (grid indices (M, 3), classes (M,)).

    On the cube grid every labelled voxel is snapped to its nearest grid point; a grid point that gets
    several classes takes the most frequent one (ties: smaller id).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype.kind not in "iub":
        raise SeisfmError(f"{name}: need a 3-D integer label volume, got {labels.dtype} {labels.shape}")
    if labels.shape == tuple(grid.shape):
        pts = np.argwhere(labels > 0)
        return pts, labels[tuple(pts.T)].astype(int)
    fits = tuple(cube_shape) == labels.shape if cube_shape is not None else GridSpec.for_cube(labels.shape, grid.stride).shape == tuple(grid.shape)
    if not fits:
        raise SeisfmError(
            f"{name}: shape {labels.shape} is neither the feature grid {tuple(grid.shape)} nor the cube "
            f"{tuple(cube_shape) if cube_shape is not None else '(grid x stride)'}"
        )
    vox = np.argwhere(labels > 0)
    cls = labels[tuple(vox.T)].astype(np.int64)
    flat = np.ravel_multi_index(tuple(grid.grid_index(vox).T), grid.shape) if len(vox) else np.zeros(0, np.int64)
    pairs, counts = np.unique(np.stack([flat, cls], 1), axis=0, return_counts=True) if len(vox) else (np.zeros((0, 2), int), np.zeros(0, int))
    # per grid point keep the pair with most votes (rows sorted by flat, then class: first max wins)
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    pairs = pairs[order]
    first = np.ones(len(pairs), bool)
    first[1:] = pairs[1:, 0] != pairs[:-1, 0]
    pairs = pairs[first]
    return np.stack(np.unravel_index(pairs[:, 0], grid.shape), 1), pairs[:, 1].astype(int)


# ---------------------------------------------------------------------- segmenter
class KnnSegmenter:
    """k-nearest-neighbour vote over a labelled support set, exact search in a usearch Index."""

    def __init__(self, features: FeatureMatrix, points, classes, *, k: int = 5, weighted: bool = False,
                 threads: int | None = None):
        from usearch.index import Index

        self.features = features
        self.k = int(k)
        self.weighted = bool(weighted)
        self.threads = threads or default_threads()
        pts = np.asarray(points, int).reshape(-1, 3)
        cls = np.asarray(classes, int).reshape(-1)
        if self.k < 1:
            raise SeisfmError(f"k must be at least 1, got {k}")
        keep = cls > 0
        flat = np.ravel_multi_index(tuple(pts[keep].T), features.shape) if keep.any() else np.zeros(0, int)
        cls = cls[keep]
        ok = features.valid[flat]
        flat, cls = flat[ok], cls[ok]
        self.class_ids = tuple(int(c) for c in np.unique(cls))
        if len(self.class_ids) < 2:
            raise SeisfmError(f"label at least two classes (got {len(self.class_ids)} class with valid embeddings)")
        self.support_flat = flat
        self.support_class = np.searchsorted(self.class_ids, cls)  # 0..C-1
        self.index = Index(ndim=features.dim, metric="ip", dtype=USEARCH_DTYPE[features.dtype])
        self.index.add(np.arange(len(flat)), features.vectors[flat], threads=self.threads)
        self._k = min(self.k, len(flat))

    @property
    def n_support(self) -> int:
        return len(self.support_flat)

    def classify(self, flat_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Classes, probabilities ``(M, C)`` and confidence for flat grid indices."""
        fm = self.features
        flat_index = np.asarray(flat_index).reshape(-1)
        m = len(flat_index)
        C = len(self.class_ids)
        classes = np.zeros(m, np.int32)
        probs = np.zeros((m, C), np.float32)
        conf = np.full(m, np.nan, np.float32)
        ok = fm.valid[flat_index]
        if not ok.any():
            return classes, probs, conf
        q = fm.vectors[flat_index[ok]]
        found = self.index.search(q, self._k, exact=True, threads=self.threads)
        keys = np.asarray(found.keys).reshape(len(q), -1)
        cls = self.support_class[keys]
        if self.weighted:
            sim = 1.0 - np.asarray(found.distances, np.float32).reshape(len(q), -1)
            if fm.dtype == "int8":
                sim /= np.float32(fm.quant_scale) ** 2
            w = 1.0 / (np.maximum(1.0 - sim, 0.0) + 1e-3)
        else:
            w = np.ones(keys.shape, np.float32)
        votes = np.zeros((len(q), C), np.float32)
        rows = np.repeat(np.arange(len(q)), keys.shape[1])
        np.add.at(votes, (rows, cls.ravel()), w.ravel())
        votes /= votes.sum(axis=1, keepdims=True)
        best = np.argmax(votes, axis=1)
        classes[ok] = np.asarray(self.class_ids, np.int32)[best]
        probs[ok] = votes
        conf[ok] = votes[np.arange(len(q)), best]
        return classes, probs, conf

    def segment_region(self, region) -> KnnResult:
        """Classify a box of the grid given as three slices (e.g. the visible slice)."""
        shape = self.features.shape
        region = tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, shape))
        ii = np.ix_(*(np.arange(s.start, s.stop) for s in region))
        sub = tuple(s.stop - s.start for s in region)
        flat = np.ravel_multi_index(tuple(np.broadcast_to(a, sub) for a in ii), shape).reshape(-1)
        c, p, f = self.classify(flat)
        return KnnResult(c.reshape(sub), p.reshape(*sub, -1), f.reshape(sub), self.class_ids, region)

    def segment_slice(self, axis: int, index: int) -> KnnResult:
        """One grid slice (axis 0 inline, 1 crossline, 2 time), squeezed to 2-D; shown first in the viewer."""
        n = self.features.shape[axis]
        if not 0 <= int(index) < n:
            raise SeisfmError(f"slice {index} on axis {axis} is outside the feature grid (0..{n - 1})")
        region = [slice(None)] * 3
        region[axis] = slice(int(index), int(index) + 1)
        r = self.segment_region(tuple(region))
        return KnnResult(r.classes.squeeze(axis), r.probabilities.squeeze(axis), r.confidence.squeeze(axis), r.class_ids, r.region)

    def segment(self, *, batch: int = 1 << 18, progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> KnnResult:
        """The whole grid in batches; ``progress(done, total)`` after each, ``cancel()`` True stops (SeisfmCancelled)."""
        fm = self.features
        n = fm.grid.size
        C = len(self.class_ids)
        classes = np.zeros(n, np.int32)
        probs = np.zeros((n, C), np.float32)
        conf = np.full(n, np.nan, np.float32)
        for a in range(0, n, batch):
            if cancel is not None and cancel():
                raise SeisfmCancelled(f"kNN segmentation stopped after {a} of {n} grid points")
            b = min(a + batch, n)
            classes[a:b], probs[a:b], conf[a:b] = self.classify(np.arange(a, b))
            if progress is not None:
                progress(b, n)
        shape = fm.shape
        return KnnResult(classes.reshape(shape), probs.reshape(*shape, C), conf.reshape(shape), self.class_ids,
                         tuple(slice(0, s) for s in shape))
