"""Unsupervised facies: spherical k-means over the feature grid -> a class map with k classes (headless).

The stored vectors are unit length, so clusters are by cosine: a point belongs to the centroid with the
largest dot product, and a centroid is the normalised sum of its points (spherical k-means).

1. Fit on at most ``sample`` valid rows (default 2^20, drawn with ``seed``), in the stored dtype.
2. ``engine="lloyd"`` (default): greedy k-means++ seeding on at most 65 536 of those rows (``seed``), then
   Lloyd iterations. Mixed precision on int8 stores: centroids are quantised to int8 with their own scale
   (``127 / max|c|``), the dot products are exact integer arithmetic (SimSIMD ``cdist``; oneDNN's int8 GEMM
   when SimSIMD is unsafe), and the centroid sums of the stored integers are exact. Empty clusters
   restart at the sample points farthest from their centroids. Stops when fewer than ``min_shift`` of the
   sample rows change cluster, or after ``max_iterations``. The same input and seed give the same classes.
   ``engine="usearch"``: usearch's mixed-precision ``kmeans`` on the sample (cosine, stored dtype).
   usearch 2.26 does not pass ``seed`` on (its centroids start at random rows drawn from the system's
   random device) and never calls back, so that fit is not reproducible and cannot be cancelled midway.
3. Assign every valid grid point to its nearest centroid with the same kernel; invalid points get class 0.
4. Classes 1..k in order of size over the whole grid, largest first (equal sizes: fit order).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import SeisfmCancelled, SeisfmError
from .kernels import available, default_threads, support_dots
from .matrix import FeatureMatrix

SAMPLE = 1 << 20  # rows the fit sees by default: 64 MB of int8 x 64
INIT_SAMPLE = 1 << 16  # rows k-means++ seeding sees
BLOCK = 1 << 16  # rows per kernel call
BATCH = 1 << 20  # grid points between progress reports / cancel checks in the final assignment
ENGINES = ("lloyd", "usearch")


@dataclass
class FaciesResult:
    """A k-means class map on the feature grid."""

    classes: np.ndarray  # int32 grid-shaped, 1..k, 0 = no value
    centroids: np.ndarray  # float32 (k, dim), unit length; row j is class j + 1
    seconds: float
    counts: np.ndarray  # int64 (k,), grid points per class
    iterations: int  # Lloyd iterations run (usearch: the cap; it does not report the count)
    sample_size: int  # rows the fit used
    engine: str


# ---------------------------------------------------------------------- nearest centroid
class _Nearest:
    """Nearest centroid by dot product for rows in the stored dtype."""

    def __init__(self, centroids: np.ndarray, dtype: str, quant_scale: float, threads: int):
        c = np.asarray(centroids, np.float64)
        self.threads = threads
        if dtype == "int8":
            peak = np.abs(c).max(axis=1)
            scale = np.where(peak > 0, 127.0 / np.maximum(peak, 1e-300), 1.0)
            self.w = np.clip(np.rint(c * scale[:, None]), -127, 127).astype(np.int8)
            self.col = (1.0 / (scale * quant_scale)).astype(np.float32)  # raw dot -> cosine
        else:
            self.w = c.astype(dtype)
            self.col = np.ones(len(c), np.float32)
        if dtype != "float32" and available("simsimd"):
            self.name = "simsimd"
        elif dtype == "int8":
            self._gemm = support_dots(self.w)  # oneDNN int8 GEMM if exact here, else float32 (still exact)
            self.name = self._gemm.name
        else:
            self.w = self.w.astype(np.float32)
            self.name = "numpy"

    def dots(self, x: np.ndarray) -> np.ndarray:
        if self.name == "simsimd":
            import simsimd

            out = np.empty((len(x), len(self.w)), np.float32)
            simsimd.cdist(x, self.w, metric="dot", threads=self.threads, out=out)
        elif self.name == "numpy":
            out = np.asarray(x, np.float32) @ self.w.T
        else:
            out = self._gemm(x).numpy()
        out *= self.col
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest centroid per row (ties: the first)."""
        idx = np.empty(len(x), np.int32)
        for a in range(0, len(x), BLOCK):
            idx[a : a + BLOCK] = np.argmax(self.dots(x[a : a + BLOCK]), axis=1)
        return idx

    def similarity(self, x: np.ndarray) -> np.ndarray:
        """Cosine to the nearest centroid per row."""
        return np.concatenate([self.dots(x[a : a + BLOCK]).max(axis=1) for a in range(0, len(x), BLOCK)])


# ---------------------------------------------------------------------- fit
def _unit(x: np.ndarray) -> np.ndarray:
    f = np.asarray(x, np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-300)


def _seed_centroids(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ (2 + ln k candidates per step, keep the one that lowers the potential most)."""
    xf = _unit(x).astype(np.float32)
    n = len(xf)
    trials = 2 + int(np.log(k))
    chosen = [int(rng.integers(n))]
    best = xf @ xf[chosen[0]]
    for _ in range(1, k):
        d2 = np.maximum(2.0 - 2.0 * best.astype(np.float64), 0.0)  # squared distance of unit vectors
        total = d2.sum()
        if total > 0:
            cand = np.minimum(np.searchsorted(np.cumsum(d2), rng.random(trials) * total), n - 1)
        else:  # every row sits on a centre already: any row
            cand = rng.integers(n, size=trials)
        sims = np.maximum(best[:, None], xf @ xf[cand].T)
        pick = int(np.argmin(np.maximum(2.0 - 2.0 * sims.astype(np.float64), 0.0).sum(axis=0)))
        chosen.append(int(cand[pick]))
        best = sims[:, pick]
    return _unit(x[chosen])


def _cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums (float64; exact integer sums for int8) and sizes, after one stable sort by cluster."""
    order = np.argsort(labels.astype(np.int16 if k < 32768 else np.int32), kind="stable")
    xs = np.take(x, order, axis=0)
    counts = np.bincount(labels, minlength=k)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    # int8: exact integer sums; int32 holds 127 * 2^24 rows, int64 beyond
    acc = (np.int32 if len(x) <= 1 << 24 else np.int64) if x.dtype == np.int8 else np.float64
    sums = np.stack([xs[bounds[j] : bounds[j + 1]].sum(axis=0, dtype=acc) for j in range(k)]).astype(np.float64)
    return sums, counts


def _lloyd(x, k, *, dtype, quant_scale, rng, max_iterations, min_shift, threads, step, cancel):
    init = x if len(x) <= INIT_SAMPLE else x[np.sort(rng.choice(len(x), INIT_SAMPLE, replace=False))]
    centroids = _seed_centroids(init, k, rng)
    labels = np.full(len(x), -1, np.int32)
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        if cancel is not None and cancel():
            raise SeisfmCancelled(f"k-means stopped at iteration {iterations} of at most {max_iterations}")
        nearest = _Nearest(centroids, dtype, quant_scale, threads)
        new = nearest(x)
        shifted = int(np.count_nonzero(new != labels))
        labels = new
        step(iterations)
        if shifted <= min_shift * len(x):
            break
        sums, counts = _cluster_sums(x, labels, k)
        empty = np.flatnonzero(counts == 0)
        if len(empty):  # restart empty clusters at the rows their centroids explain worst
            worst = np.argsort(nearest.similarity(x), kind="stable")[: len(empty)]
            sums[empty] = np.asarray(x[worst], np.float64)
        norm = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = np.where(norm > 0, sums / np.maximum(norm, 1e-300), centroids)
    return centroids, iterations


def _usearch(x, k, *, dtype, max_iterations, min_shift, threads):
    from usearch.compiled import MetricKind, ScalarKind, kmeans

    kind = {"int8": ScalarKind.I8, "float16": ScalarKind.F16, "float32": ScalarKind.F32}[dtype]
    if len(x) <= k:
        raise SeisfmError(f"usearch k-means needs more sample rows than k={k}, got {len(x)}")
    # max_seconds=0: no wall-clock stop, so only the data decides when it ends; seed: ignored by usearch 2.26
    _, _, c = kmeans(
        np.ascontiguousarray(x),
        k,
        max_iterations=max_iterations,
        inertia_threshold=0.0,
        max_seconds=0.0,
        min_shifts=min_shift,
        seed=0,
        threads=threads,
        dtype=kind,
        metric_kind=MetricKind.Cos,
    )
    c = np.asarray(c, np.float64)
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    return np.where(norm > 0, c / np.maximum(norm, 1e-300), 0.0), max_iterations


# ---------------------------------------------------------------------- public
def kmeans_facies(
    features: FeatureMatrix,
    k: int,
    *,
    seed: int = 0,
    max_iterations: int = 50,
    sample: int | None = None,
    min_shift: float = 1e-3,
    engine: str = "lloyd",
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> FaciesResult:
    """Cluster the valid grid points into ``k`` classes (1..k by size, 0 = no value); see the module docstring.

    ``progress(done, total)``: steps = fit iterations (at most ``max_iterations``) then assignment batches of
    2^20 grid points. ``cancel()`` returning True raises :class:`SeisfmCancelled` at the next step.
    """
    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise SeisfmError(f"unknown k-means engine {engine!r}; choose from {ENGINES}")
    k = int(k)
    valid_rows = np.flatnonzero(features.valid)
    n_valid = len(valid_rows)
    if k < 2:
        raise SeisfmError(f"k must be at least 2, got {k}")
    if k > n_valid:
        raise SeisfmError(f"k={k} is more than the {n_valid} grid points with a valid embedding in {features.name}")
    if int(max_iterations) < 1:
        raise SeisfmError(f"max_iterations must be at least 1, got {max_iterations}")
    size = SAMPLE if sample is None else int(sample)
    if size < k:
        raise SeisfmError(f"sample {size} is smaller than k={k}")
    threads = threads or default_threads()
    rng = np.random.default_rng(seed)
    rows = valid_rows if size >= n_valid else np.sort(rng.choice(valid_rows, size, replace=False))
    x = features.vectors[rows]

    n = features.grid.size
    n_batches = -(-n // BATCH)
    total = int(max_iterations) + n_batches

    def step(done):
        if progress is not None:
            progress(done, total)

    if engine == "lloyd":
        centroids, iterations = _lloyd(
            x,
            k,
            dtype=features.dtype,
            quant_scale=features.quant_scale,
            rng=rng,
            max_iterations=int(max_iterations),
            min_shift=min_shift,
            threads=threads,
            step=step,
            cancel=cancel,
        )
    else:
        if cancel is not None and cancel():
            raise SeisfmCancelled("k-means stopped before the fit")
        centroids, iterations = _usearch(
            x, k, dtype=features.dtype, max_iterations=int(max_iterations), min_shift=min_shift, threads=threads
        )
    del x
    step(int(max_iterations))

    nearest = _Nearest(centroids, features.dtype, features.quant_scale, threads)
    labels = np.zeros(n, np.int32)
    for b, a in enumerate(range(0, n, BATCH)):
        if cancel is not None and cancel():
            raise SeisfmCancelled(f"k-means assignment stopped after {a} of {n} grid points")
        labels[a : a + BATCH] = nearest(features.vectors[a : a + BATCH])
        step(int(max_iterations) + b + 1)

    counts = np.bincount(labels[valid_rows], minlength=k)
    order = np.argsort(-counts, kind="stable")  # largest first, ties in fit order
    rank = np.empty(k, np.int32)
    rank[order] = np.arange(1, k + 1, dtype=np.int32)
    classes = rank[labels]
    classes[features.invalid_index] = 0
    return FaciesResult(
        classes.reshape(features.shape),
        centroids[order].astype(np.float32),
        time.perf_counter() - t0,
        counts[order].astype(np.int64),
        int(iterations),
        len(rows),
        engine,
    )


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index of two labellings of the same points (1 = same partition, ~0 = chance).

    From the contingency table n_ij: (sum C(n_ij,2) - E) / (mean(sum C(a_i,2), sum C(b_j,2)) - E), with
    E = sum C(a_i,2) * sum C(b_j,2) / C(n,2). Label values are names only; two trivial partitions (one
    cluster, or all singletons, on both sides) count as identical: 1.
    """
    a = np.asarray(a).reshape(-1)
    b = np.asarray(b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"labellings differ in length: {a.size} and {b.size}")
    n = a.size
    if n < 2:
        return 1.0
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    nb = int(ib.max()) + 1
    table = np.bincount(ia.reshape(-1).astype(np.int64) * nb + ib.reshape(-1), minlength=(int(ia.max()) + 1) * nb)

    def pairs(counts):
        c = np.asarray(counts, np.float64)
        return float((c * (c - 1) / 2).sum())

    index = pairs(table)
    row = pairs(np.bincount(ia.reshape(-1)))
    col = pairs(np.bincount(ib.reshape(-1)))
    expected = row * col / (n * (n - 1) / 2)
    top = (row + col) / 2
    if top == expected:
        return 1.0
    return (index - expected) / (top - expected)
