"""Whole-grid segmentation time: the default linear segmenter against kNN (the baseline), same run, same store.

    .venv/bin/python benchmarks/bench_segment.py --size 256      # 16.7 M grid points x 64 int8 (1.07 GB)

The store is synthetic (7 classes in layers along time, int8 unit vectors around 7 centres), the support set 100
grid points per class. Prints JSON: seconds per method, ratio to kNN, agreement of the class maps.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from napari_seisfm.search import FeatureMatrix, KnnSegmenter, LinearSegmenter
from napari_seisfm.store.grid import GridSpec


def store(size: int, dim: int, n_classes: int, seed: int = 0) -> tuple[FeatureMatrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = GridSpec((size, size, size), (1, 1, 1))
    layer = (np.arange(size) * n_classes // size).astype(np.int8)  # class per time index
    centres = rng.normal(size=(n_classes, dim)).astype(np.float32)
    v = np.empty((grid.size, dim), np.int8)
    rows = size * size  # one inline per chunk
    for a in range(0, grid.size, rows):
        cls = np.tile(layer, size)  # (crossline, time) of one inline
        x = centres[cls] + 1.2 * rng.normal(size=(rows, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        v[a : a + rows] = np.clip(np.rint(x * 127), -127, 127)
    truth = np.broadcast_to(layer, (size, size, size))
    return FeatureMatrix(v, np.ones(grid.size, bool), grid, quant_scale=127.0), truth


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--per-class", type=int, default=100)
    a = p.parse_args(argv)
    fm, truth = store(a.size, a.dim, a.classes)
    rng = np.random.default_rng(1)
    pts = np.concatenate(
        [np.argwhere(truth == c)[rng.choice(int((truth == c).sum()), a.per_class, replace=False)] for c in range(a.classes)]
    )
    lab = truth[tuple(pts.T)].astype(int) + 1
    out = {
        "grid_points": int(fm.grid.size),
        "dim": a.dim,
        "classes": a.classes,
        "support": int(len(pts)),
        "cores": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg()[0],
    }
    results = {}
    for name, make in (
        ("knn k=5 (baseline)", lambda: KnnSegmenter(fm, pts, lab, k=5)),
        ("linear, default (context 1.5,3, smooth 1)", lambda: LinearSegmenter(fm, pts, lab)),
        ("linear, no context", lambda: LinearSegmenter(fm, pts, lab, context=())),
    ):
        t0 = time.perf_counter()
        seg = make()
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = seg.segment()
        t_seg = time.perf_counter() - t0
        results[name] = r.classes
        out[name] = {
            "fit_s": round(t_fit, 3),
            "segment_s": round(t_seg, 2),
            "accuracy": round(float(np.mean(r.classes - 1 == truth)), 4),
        }
        del r
    base = out["knn k=5 (baseline)"]["segment_s"]
    for name in results:
        out[name]["ratio_to_knn"] = round(out[name]["segment_s"] / base, 3)
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
