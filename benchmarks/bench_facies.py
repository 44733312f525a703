"""Facies k-means benchmark: kmeans_facies against a numpy float32 Lloyd baseline, same run.

    .venv/bin/python benchmarks/bench_facies.py                   # 2 M x 64 int8, k = 16 (quick)
    .venv/bin/python benchmarks/bench_facies.py --n 16777216      # a 256^3 grid

Prints one JSON object. Vectors: k standard-normal cluster centres plus noise (``--noise`` per dimension, 2.0:
overlapping clusters, ~20 Lloyd iterations), L2-normalised and stored as int8 round(v*127), built in slabs.

- ours: ``kmeans_facies`` with its defaults (Lloyd, fitted on a 2^20-row sample, then every grid point);
  the fit/assignment split is taken from its progress callback.
- baseline: numpy float32 Lloyd from the same k-means++ start on the same sample -- as many iterations as ours
  ran, each ``argmax(x @ C.T)`` in 65 536-row blocks + ``np.bincount`` centroid sums -- then every grid point
  decoded to float32 and assigned in blocks.
- usearch: ``kmeans_facies(engine="usearch")`` (usearch's mixed-precision kmeans on the same sample).
Seconds per million grid points are the total divided by N / 1e6. Agreement: adjusted Rand index against the
generating clusters and between ours and the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from napari_seisfm.search import FeatureMatrix, adjusted_rand_index, kmeans_facies
from napari_seisfm.search import facies as F
from napari_seisfm.store.grid import GridSpec

BLOCK = 1 << 16


def build(n: int, dim: int, k: int, seed: int = 0, noise: float = 0.9):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    out = np.empty((n, dim), np.int8)
    truth = rng.integers(0, k, n).astype(np.int16)
    for a in range(0, n, 1 << 20):
        b = min(a + (1 << 20), n)
        v = centres[truth[a:b]] + noise * rng.standard_normal((b - a, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[a:b] = np.clip(np.rint(v * 127), -127, 127)
    return out, truth


def numpy_lloyd(fm: FeatureMatrix, k: int, iterations: int, seed: int, sample: int):
    """The textbook float32 version of what kmeans_facies does (same sample and start, no int8 kernels)."""
    rng = np.random.default_rng(seed)
    valid_rows = np.flatnonzero(fm.valid)
    rows = valid_rows if sample >= len(valid_rows) else np.sort(rng.choice(valid_rows, sample, replace=False))
    init = rows if len(rows) <= F.INIT_SAMPLE else rows[np.sort(rng.choice(len(rows), F.INIT_SAMPLE, replace=False))]
    c = F._seed_centroids(fm.vectors[init], k, rng).astype(np.float32)
    x = fm.decode(fm.vectors[rows])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.empty(len(x), np.int64)
    for _ in range(iterations):
        for a in range(0, len(x), BLOCK):
            labels[a : a + BLOCK] = np.argmax(x[a : a + BLOCK] @ c.T, axis=1)
        sums = np.stack([np.bincount(labels, weights=x[:, d], minlength=k) for d in range(x.shape[1])], 1)
        norm = np.linalg.norm(sums, axis=1, keepdims=True)
        c = np.where(norm > 0, sums / np.maximum(norm, 1e-300), c).astype(np.float32)
    out = np.empty(fm.grid.size, np.int64)
    for a in range(0, fm.grid.size, BLOCK):
        out[a : a + BLOCK] = np.argmax(fm.decode(fm.vectors[a : a + BLOCK]) @ c.T, axis=1)
    return out


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2_000_000, help="grid points (default: %(default)s; 16777216 = 256^3)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--noise", type=float, default=2.0, help="noise per dimension around unit-variance centres (default: %(default)s)"
    )
    p.add_argument("--no-usearch", action="store_true", help="skip the usearch engine")
    args = p.parse_args(argv)

    vectors, truth = build(args.n, args.dim, args.k, args.seed, args.noise)
    fm = FeatureMatrix.from_array(vectors, GridSpec((args.n, 1, 1), (1, 1, 1)), quant_scale=127.0)
    per_m = args.n / 1e6
    load_before = os.getloadavg()

    marks = {}
    batches = -(-args.n // F.BATCH)

    def progress(done, total):  # steps: fit iterations (up to the cap), then assignment batches
        if done >= total - batches:
            marks.setdefault("fit_end", time.perf_counter())

    t0 = time.perf_counter()
    ours = kmeans_facies(fm, args.k, seed=args.seed, progress=progress)
    fit_s = marks["fit_end"] - t0
    base, base_s = timed(lambda: numpy_lloyd(fm, args.k, ours.iterations, args.seed, F.SAMPLE))
    res = {
        "n": args.n,
        "dim": args.dim,
        "k": args.k,
        "noise": args.noise,
        "dtype": "int8",
        "sample": ours.sample_size,
        "threads": len(os.sched_getaffinity(0)),
        "loadavg_before": [round(v, 2) for v in load_before],
        "ours": {
            "seconds": round(ours.seconds, 3),
            "per_million_s": round(ours.seconds / per_m, 3),
            "fit_s": round(fit_s, 3),
            "assign_s": round(ours.seconds - fit_s, 3),
            "iterations": ours.iterations,
            "ari_truth": round(adjusted_rand_index(ours.classes.ravel(), truth), 4),
        },
        "numpy_baseline": {
            "seconds": round(base_s, 3),
            "per_million_s": round(base_s / per_m, 3),
            "iterations": ours.iterations,
            "ari_truth": round(adjusted_rand_index(base, truth), 4),
        },
        "speedup_vs_numpy": round(base_s / ours.seconds, 2),
        "ari_ours_vs_numpy": round(adjusted_rand_index(ours.classes.ravel(), base), 4),
    }
    if not args.no_usearch:
        u = kmeans_facies(fm, args.k, seed=args.seed, engine="usearch", max_iterations=ours.iterations)
        res["usearch"] = {
            "seconds": round(u.seconds, 3),
            "per_million_s": round(u.seconds / per_m, 3),
            "max_iterations": ours.iterations,
            "ari_truth": round(adjusted_rand_index(u.classes.ravel(), truth), 4),
        }
    res["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    json.dump(res, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
