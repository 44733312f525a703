"""kNN segmentation: a few labelled grid points per class -> a class for every grid point.

Support set: the stored vectors at labelled grid points (class ids > 0; 0 = unlabelled). For a grid
point x, its k nearest support vectors s by similarity ``x.s`` (cosine: the stored vectors are unit
length) are found exactly: blocks of queries times the support matrix in one GEMM (oneDNN int8 for int8
stores -- integer arithmetic; float32 otherwise), then k rounds of ``argmax`` over the block's similarities
(each round takes its winner out; numpy's argmax returns the first of equal maxima, so equal similarities
come out by support position, as a stable sort would). For k up to ``ROUNDS_MAX`` this is 3x cheaper than
``torch.topk`` and releases the GIL, so worker threads scale (benchmarks/bench_knn_scale.py); on the CPU the
GEMM and the rounds run on ``SUB`` rows at a time, whose similarities stay in L2 through the k passes
(benchmarks/bench_knn_topk.py: about 1.5x fewer CPU seconds than whole 2048-row blocks); larger k uses
``torch.topk`` / ``argpartition``. ``backend="numpy"`` does the same without torch (numpy float32 GEMM,
exact for int8 stores too): it needs no ``import torch`` (seconds on a cold start), so the dock classifies
the visible slice with it. The neighbours vote:

- plain:    vote_c = #{neighbours of class c} / k
- weighted: vote_c = sum_{neighbours of class c} w / sum w,  w = 1 / (1 - x.s + 1e-3)

``probabilities[..., j]`` is the vote of ``class_ids[j]`` (they sum to 1), the class is the argmax;
vote ties go to the tied class whose neighbours have the larger summed similarity, then to the smaller
class id (with k = 4 and two classes 2-2, the closer pair wins instead of always the first class).
``confidence`` is the chosen class's vote. k is capped at the number of support points. Grid points
without a valid embedding get class 0, probabilities 0 and confidence NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import SeisfmCancelled, SeisfmError
from ..extras import installed
from ..store.grid import GridSpec
from .kernels import default_threads, support_dots
from .matrix import FeatureMatrix

BLOCK = 2048  # queries per task of a worker thread (and per vote)
SUB = 256  # queries per GEMM + top-k pass: the (SUB, n_support) float32 similarities stay in L2 through the k rounds
ROUNDS_MAX = 16  # k up to this: k argmax rounds; above, a partial sort (torch.topk / argpartition)


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


class _NumpyDots:
    """``x @ w.T`` in numpy float32 (BLAS sgemm): no torch. Exact for int8 values (products and sums < 2^24)."""

    name = "numpy"

    def __init__(self, w: np.ndarray):
        self._wt = np.ascontiguousarray(np.asarray(w, np.float32).T)  # (dim, n)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) @ self._wt


def _topk_rounds(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row, in descending order, equal values by column: k rounds of ``argmax`` (the
    first of equal maxima), each setting its winner to -inf. Overwrites ``sims`` (finite float32)."""
    b, n = sims.shape
    sims = np.ascontiguousarray(sims)
    flat, base = sims.reshape(-1), np.arange(0, b * n, n)  # flat positions: 1-D take/put beat 2-D fancy indexing
    idx = np.empty((k, b), np.intp)
    vals = np.empty((k, b), sims.dtype)
    for j in range(k):
        sims.argmax(axis=1, out=idx[j])
        at = base + idx[j]
        np.take(flat, at, out=vals[j])
        flat[at] = -np.inf
    return idx.T, vals.T


def _topk_stable(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row, in descending order, equal values by column (a stable sort of -sims):
    ``argpartition`` to k+1 candidates sorted by (value, column); rows whose k-th and (k+1)-th values
    are equal (the candidates may then miss a lower column) are redone with a full stable argsort."""
    b, n = sims.shape
    if k >= n:
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(sims, order, 1)
    cand = np.argpartition(-sims, k, axis=1)[:, : k + 1]
    vals = np.take_along_axis(sims, cand, 1)
    order = np.lexsort((cand, -vals))  # per row: value descending, then column
    cand, vals = np.take_along_axis(cand, order, 1), np.take_along_axis(vals, order, 1)
    tied = np.flatnonzero(vals[:, k - 1] == vals[:, k])
    if len(tied):
        full = np.argsort(-sims[tied], axis=1, kind="stable")[:, :k]
        cand[tied, :k] = full
        vals[tied, :k] = np.take_along_axis(sims[tied], full, 1)
    return cand[:, :k], vals[:, :k]


def _is_range(a: np.ndarray) -> bool:
    return len(a) > 0 and int(a[-1]) - int(a[0]) == len(a) - 1 and bool(np.all(np.diff(a) == 1))


@dataclass
class Segmentation:
    """Class map, per-class probabilities and confidence for a region of the grid (or the whole grid),
    from any segmentation method."""

    classes: np.ndarray  # int32, class id per grid point, 0 = no value
    probabilities: np.ndarray  # float32 (..., len(class_ids)), sums to 1 where valid
    confidence: np.ndarray  # float32, probability of the chosen class, NaN = no value
    class_ids: tuple[int, ...]
    region: tuple[slice, slice, slice]  # where this sits on the feature grid


KnnResult = Segmentation  # the name before other methods existed


def box_index(shape, region):
    """A box of the grid (three slices) -> (the slices made explicit, the box's shape, its flat indices)."""
    region = tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, shape))
    sub = tuple(s.stop - s.start for s in region)
    ii = np.ix_(*(np.arange(s.start, s.stop) for s in region))
    return region, sub, np.ravel_multi_index(tuple(np.broadcast_to(a, sub) for a in ii), shape).reshape(-1)


class SliceFirst:
    """``segment_slice`` for a segmenter with ``features`` and ``segment_region``: what the viewer shows first."""

    def segment_slice(self, axis: int, index: int) -> Segmentation:
        """One grid slice (axis 0 inline, 1 crossline, 2 time), squeezed to 2-D."""
        n = self.features.shape[axis]
        if not 0 <= int(index) < n:
            raise SeisfmError(f"slice {index} on axis {axis} is outside the feature grid (0..{n - 1})")
        region = [slice(None)] * 3
        region[axis] = slice(int(index), int(index) + 1)
        r = self.segment_region(tuple(region))
        return Segmentation(
            r.classes.squeeze(axis), r.probabilities.squeeze(axis), r.confidence.squeeze(axis), r.class_ids, r.region
        )


# ---------------------------------------------------------------------- support sets
def support_from_points(features: FeatureMatrix, points, classes, *, space: str = "grid") -> tuple[np.ndarray, np.ndarray]:
    """Class-tagged points (any space of :meth:`FeatureMatrix.to_grid`) -> (grid indices (M, 3), classes (M,))."""
    pts = np.asarray([features.to_grid(p, space) for p in np.asarray(points, float).reshape(-1, 3)], int).reshape(-1, 3)
    cls = np.asarray(classes, int).reshape(-1)
    if len(cls) != len(pts):
        raise SeisfmError(f"{len(pts)} points but {len(cls)} class ids")
    return pts, cls


def support_from_labels(
    labels: np.ndarray, grid: GridSpec, *, cube_shape=None, name: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
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
    fits = (
        tuple(cube_shape) == labels.shape
        if cube_shape is not None
        else GridSpec.for_cube(labels.shape, grid.stride).shape == tuple(grid.shape)
    )
    if not fits:
        raise SeisfmError(
            f"{name}: shape {labels.shape} is neither the feature grid {tuple(grid.shape)} nor the cube "
            f"{tuple(cube_shape) if cube_shape is not None else '(grid x stride)'}"
        )
    vox = np.argwhere(labels > 0)
    cls = labels[tuple(vox.T)].astype(np.int64)
    flat = np.ravel_multi_index(tuple(grid.grid_index(vox).T), grid.shape) if len(vox) else np.zeros(0, np.int64)
    pairs, counts = (
        np.unique(np.stack([flat, cls], 1), axis=0, return_counts=True) if len(vox) else (np.zeros((0, 2), int), np.zeros(0, int))
    )
    # per grid point keep the pair with most votes (rows sorted by flat, then class: first max wins)
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    pairs = pairs[order]
    first = np.ones(len(pairs), bool)
    first[1:] = pairs[1:, 0] != pairs[:-1, 0]
    pairs = pairs[first]
    return np.stack(np.unravel_index(pairs[:, 0], grid.shape), 1), pairs[:, 1].astype(int)


def valid_support(features: FeatureMatrix, points, classes) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Labelled grid points -> (flat indices, class index 0..C-1, class ids): unlabelled (0) and
    invalid (dead trace, NaN) points dropped; fewer than two classes left is a SeisfmError."""
    pts = np.asarray(points, int).reshape(-1, 3)
    cls = np.asarray(classes, int).reshape(-1)
    keep = cls > 0
    flat = np.ravel_multi_index(tuple(pts[keep].T), features.shape) if keep.any() else np.zeros(0, int)
    cls = cls[keep]
    ok = features.valid[flat]
    flat, cls = flat[ok], cls[ok]
    class_ids = tuple(int(c) for c in np.unique(cls))
    if len(class_ids) < 2:
        dropped = int((~ok).sum())
        why = f"; {dropped} labelled point(s) fall on grid points without a valid embedding" if dropped else ""
        raise SeisfmError(f"label at least two classes (got {len(class_ids)} class with valid embeddings{why})")
    return flat, np.searchsorted(class_ids, cls), class_ids


# ---------------------------------------------------------------------- segmenter
class KnnSegmenter(SliceFirst):
    """k-nearest-neighbour vote over a labelled support set: blocked exact GEMM + top-k (docs/search.md).

    ``threads``: worker threads, each classifying its own blocks with single-threaded torch ops (torch's
    thread count is set to 1 for the duration of a call and restored);
    ``device``: ``"cpu"`` or ``"cuda"`` (default: cuda when torch sees one); ``backend``: ``"auto"``,
    ``"onednn-int8"`` or ``"torch-f32"`` (see :func:`kernels.support_dots`), or ``"numpy"`` (no torch
    at all: same neighbours and votes, CPU only, one numpy GEMM per block; what ``auto`` takes on the CPU
    when torch is not installed).
    """

    def __init__(
        self,
        features: FeatureMatrix,
        points,
        classes,
        *,
        k: int = 5,
        weighted: bool = False,
        threads: int | None = None,
        device: str | None = None,
        backend: str = "auto",
        block: int = BLOCK,
    ):
        self.features = features
        self.k = int(k)
        self.weighted = bool(weighted)
        self.threads = threads or default_threads()
        self.block = int(block)
        self.sub = SUB  # rows per GEMM + top-k pass within a block (0: the whole block at once, as before issue 24)
        if self.k < 1:
            raise SeisfmError(f"k must be at least 1, got {k}")
        self.support_flat, self.support_class, self.class_ids = valid_support(features, points, classes)
        flat = self.support_flat
        self.k_used = min(self.k, len(flat))
        if backend == "auto" and device in (None, "cpu") and not installed("torch"):
            backend = "numpy"  # the headless core install (no [torch] extra): the same neighbours, numpy's GEMM
        if backend == "numpy":
            if device not in (None, "cpu"):
                raise SeisfmError(f"the numpy kNN backend runs on the CPU, not {device!r}")
            device = "cpu"
            self._dots = _NumpyDots(features.vectors[flat])
        else:
            if device is None:
                device = "cuda" if _cuda() else "cpu"
            self._dots = support_dots(features.vectors[flat], backend=backend, device=device)
        self.device = device
        self.backend = self._dots.name
        # raw dot -> cosine: int8 stores hold round(v * quant_scale)
        self._to_cos = np.float32(1.0 / features.quant_scale**2) if features.dtype == "int8" else np.float32(1.0)
        # numpy: BLAS threads its own GEMM, argpartition holds the GIL -- worker threads would not help
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 and device == "cpu" and backend != "numpy" else None

    @property
    def n_support(self) -> int:
        return len(self.support_flat)

    # ------------------------------------------------------------------ one block
    def _neighbours(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest support points of the rows of ``x``: (indices (b, k), raw dots (b, k)).

        Order: descending dot product, equal dot products by support position (a stable sort of -dot).
        On CUDA ``torch.topk``, which does not promise which of equal values it returns, takes k+1 and the
        rare rows whose k-th and (k+1)-th values are equal are redone with numpy's stable argsort.
        """
        k, n = self.k_used, self.n_support
        if self.sub and self.device == "cpu" and k <= ROUNDS_MAX and len(x) > self.sub:
            # CPU, k rounds: GEMM and rounds per SUB rows, whose similarities stay in L2 for the k passes
            # (benchmarks/bench_knn_scale.py: 1.3-1.6x fewer CPU seconds than 2048-row blocks; same neighbours)
            idx = np.empty((len(x), k), np.intp)
            vals = np.empty((len(x), k), np.float32)
            for a in range(0, len(x), self.sub):
                idx[a : a + self.sub], vals[a : a + self.sub] = self._neighbours(x[a : a + self.sub])
            return idx, vals
        sims = self._dots(x)
        if not isinstance(sims, np.ndarray) and sims.device.type == "cpu":
            sims = sims.numpy()  # shares the tensor's memory
        if isinstance(sims, np.ndarray):  # CPU: numpy selection (argmax releases the GIL)
            return _topk_rounds(sims, k) if k <= ROUNDS_MAX else _topk_stable(sims, k)
        import torch

        vals, idx = torch.topk(sims, min(k + 1, n), dim=1)
        vals, idx = vals.cpu().numpy(), idx.cpu().numpy()
        if k < n:
            tied = np.flatnonzero(vals[:, k - 1] == vals[:, k])
            if len(tied):
                s = sims[torch.from_numpy(tied).to(sims.device)].cpu().numpy()
                order = np.argsort(-s, axis=1, kind="stable")[:, :k]
                idx[tied, :k] = order
                vals[tied, :k] = np.take_along_axis(s, order, 1)
            vals, idx = vals[:, :k], idx[:, :k]
        return idx, vals

    def _vote(self, idx: np.ndarray, dots: np.ndarray):
        """Class votes of the neighbours -> (class index 0..C-1, probabilities (b, C))."""
        b, k = idx.shape
        C = len(self.class_ids)
        cls = self.support_class[idx]
        sim = dots * self._to_cos
        w = 1.0 / (np.maximum(1.0 - sim, 0.0) + 1e-3) if self.weighted else None
        slot = (np.arange(b)[:, None] * C + cls).ravel()
        votes = np.bincount(slot, weights=None if w is None else w.ravel(), minlength=b * C).reshape(b, C)
        # vote ties: the class whose tied neighbours are closer (larger summed similarity), then the smaller id
        # (raw dot products: integers for int8 stores, so equal sums are exactly equal)
        closeness = np.bincount(slot, weights=dots.ravel().astype(np.float64), minlength=b * C).reshape(b, C)
        top = votes == votes.max(axis=1, keepdims=True)
        best = np.argmax(np.where(top, closeness, -np.inf), axis=1)
        probs = (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)
        return best, probs

    def _classify_rows(self, x: np.ndarray, valid: np.ndarray, classes, probs, conf) -> None:
        """Classify the rows of ``x`` (one block, stored dtype) into the given output slices."""
        if not valid.any():
            return
        if not valid.all():
            x = x[valid]
        idx, dots = self._neighbours(x)
        best, p = self._vote(idx, dots)
        cid = np.asarray(self.class_ids, np.int32)[best]
        c = p[np.arange(len(best)), best]
        if valid.all():
            classes[:], probs[:], conf[:] = cid, p, c
        else:
            classes[valid], probs[valid], conf[valid] = cid, p, c

    def _run_blocks(self, get_rows, n: int, classes, probs, conf) -> None:
        """Blocks of ``self.block`` rows over the worker threads; ``get_rows(a, b)`` -> (x, valid)."""
        bounds = [(a, min(a + self.block, n)) for a in range(0, n, self.block)]

        def work(ab):
            a, b = ab
            x, ok = get_rows(a, b)
            self._classify_rows(x, ok, classes[a:b], probs[a:b], conf[a:b])

        if self._pool is None or len(bounds) == 1:
            for ab in bounds:
                work(ab)
            return
        import torch

        # one block per worker thread, each op single-threaded: torch's own 2-thread ops on 2048-row blocks
        # stall when another job holds a core (measured: docs/search.md); restored afterwards
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            list(self._pool.map(work, bounds))
        finally:
            torch.set_num_threads(before)

    @staticmethod
    def _outputs(m: int, C: int):
        return np.zeros(m, np.int32), np.zeros((m, C), np.float32), np.full(m, np.nan, np.float32)

    def _classify_range(self, start: int, stop: int, classes, probs, conf) -> None:
        """Grid points ``start..stop-1`` (flat): blocks are views of the store, no gather."""
        v, ok = self.features.vectors, self.features.valid
        self._run_blocks(lambda a, b: (v[start + a : start + b], ok[start + a : start + b]), stop - start, classes, probs, conf)

    def classify(self, flat_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Classes, probabilities ``(M, C)`` and confidence for flat grid indices."""
        fm = self.features
        flat_index = np.asarray(flat_index).reshape(-1)
        out = self._outputs(len(flat_index), len(self.class_ids))
        if _is_range(flat_index):
            self._classify_range(int(flat_index[0]), int(flat_index[-1]) + 1, *out)
        elif len(flat_index):
            self._run_blocks(lambda a, b: (fm.vectors[flat_index[a:b]], fm.valid[flat_index[a:b]]), len(flat_index), *out)
        return out

    def segment_region(self, region) -> Segmentation:
        """Classify a box of the grid given as three slices (e.g. the visible slice)."""
        region, sub, flat = box_index(self.features.shape, region)
        c, p, f = self.classify(flat)
        return Segmentation(c.reshape(sub), p.reshape(*sub, -1), f.reshape(sub), self.class_ids, region)

    def segment(
        self,
        *,
        batch: int = 1 << 18,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Segmentation:
        """The whole grid in batches; ``progress(done, total)`` after each, ``cancel()`` True stops (SeisfmCancelled)."""
        fm = self.features
        n = fm.grid.size
        C = len(self.class_ids)
        classes, probs, conf = self._outputs(n, C)
        for a in range(0, n, batch):
            if cancel is not None and cancel():
                raise SeisfmCancelled(f"kNN segmentation stopped after {a} of {n} grid points")
            b = min(a + batch, n)
            self._classify_range(a, b, classes[a:b], probs[a:b], conf[a:b])
            if progress is not None:
                progress(b, n)
        shape = fm.shape
        return Segmentation(
            classes.reshape(shape),
            probs.reshape(*shape, C),
            conf.reshape(shape),
            self.class_ids,
            tuple(slice(0, s) for s in shape),
        )
