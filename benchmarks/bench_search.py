"""Click-to-map and kNN benchmark: napari_seisfm.search against numpy float32 baselines, same run.

    .venv/bin/python benchmarks/bench_search.py                 # 256^3 grid x 64, int8 and float16
    .venv/bin/python benchmarks/bench_search.py --size 96       # quick

Prints one JSON object. Vectors are synthetic but structured (smooth regions of 32 cluster centres plus
noise, L2-normalised, stored as int8 round(v*127) or float16), built straight into the stored dtype so
the only float32 copy is the baseline's (4.3 GB at 256^3 x 64), built after the engine's memory was read.

Memory: peak resident set (VmRSS sampled every 2 ms from /proc/self/status) minus the resident set before the
store matrix was built, divided by the store's bytes (vectors + valid mask), over building the store, the
clicks and the top-match list (the build's per-slab float32 temporaries are included).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

import numpy as np

from napari_seisfm.search import CentroidSearch, FeatureMatrix, KnnSegmenter, ProbeSearch, connected_to
from napari_seisfm.store.grid import GridSpec


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build(size: int, dim: int, dtype: str, seed: int = 0):
    """Structured vectors in the stored dtype, slab by slab (no full float32 transient)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, dim)).astype(np.float32)
    n = size**3
    out = np.empty((n, dim), dtype)
    region = np.empty((size, size, size), np.int16)
    ax = np.arange(size)
    for i in range(size):
        # regions: 32 bands along time that undulate with inline and crossline
        shift = 3 * np.sin(ax[:, None] * 0.07 + i * 0.05) + 2 * np.sin((ax[:, None] + i) * 0.05)
        r = (ax[None, :] / size * 24 + shift).astype(int) % 32
        region[i] = r
        v = centres[r] + 0.9 * rng.standard_normal((size, size, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
        rows = slice(i * size * size, (i + 1) * size * size)
        out[rows] = np.clip(np.rint(v * 127), -127, 127).reshape(-1, dim) if dtype == "int8" else v.reshape(-1, dim)
    return out, region


class RssPeak:
    """Samples VmRSS every 2 ms in a thread: the peak of one phase (ru_maxrss cannot be reset)."""

    def __enter__(self):
        import threading

        self.peak, self._stop = rss_mb(), threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb())


def median_ms(ts) -> float:
    return round(1e3 * float(np.median(ts)), 2)


def top_agreement(a, b, frac=0.01) -> float:
    k = max(1, int(frac * a.size))
    ta = np.argpartition(np.nan_to_num(a, nan=-9), a.size - k)[a.size - k :]
    tb = np.argpartition(np.nan_to_num(b, nan=-9), b.size - k)[b.size - k :]
    return float(len(np.intersect1d(ta, tb)) / k)


def bench_dtype(args, dtype: str) -> dict:
    res: dict = {"dtype": dtype, "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    gc.collect()
    # imported before the baseline RSS: imports are not the engine's memory
    import simsimd  # noqa: F401
    import usearch.index  # noqa: F401

    rss0 = rss_mb()
    mem = RssPeak().__enter__()
    t0 = time.perf_counter()
    vectors, region = build(args.size, args.dim, dtype)
    res["build_s"] = round(time.perf_counter() - t0, 1)
    size = args.size
    grid = GridSpec((size,) * 3, (4, 4, 4))
    fm = FeatureMatrix(vectors, np.ones(grid.size, bool), grid, quant_scale=127.0)
    res["store_mb"] = round(fm.nbytes / 2**20, 1)
    rng = np.random.default_rng(1)
    clicks = [tuple(int(x) for x in rng.integers(0, size, 3)) for _ in range(args.clicks)]
    search = CentroidSearch(fm, threads=args.threads)
    res["kernel"] = search.kernel.name
    lat, maps = [], []
    for j, c in enumerate(clicks):  # alternate positives and negatives; time click -> updated map
        for _ in range(args.reps):
            t0 = time.perf_counter()
            search.add(c, negative=(j % 3 == 2))
            search.score_map()
            lat.append(time.perf_counter() - t0)
            search.remove(c, negative=(j % 3 == 2))
        search.add(c, negative=(j % 3 == 2))
        maps.append(search.query())
    res["click_to_map_ms_median"] = median_ms(lat)
    res["loadavg_after_clicks"] = [round(x, 2) for x in os.getloadavg()]
    # the default decision: the click probe (refit + the same dot kernel + sigmoid), and its connected mask
    probe = ProbeSearch(fm, threads=args.threads)
    probe.add(clicks[0])
    probe.score_map()  # standardisation statistics: once per store, not per click
    p_lat, fit_lat, mask_lat = [], [], []
    for j, c in enumerate(clicks[1:], 1):
        for _ in range(args.reps):
            t0 = time.perf_counter()
            probe.add(c, negative=(j % 3 == 2))
            t1 = time.perf_counter()
            probe.query()
            fit_lat.append(time.perf_counter() - t1)
            probe._scores = None
            score = probe.score_map()
            p_lat.append(time.perf_counter() - t0 - fit_lat[-1])  # score_map refits once: count that one fit
            t0 = time.perf_counter()
            connected_to(score >= 0.5, probe.positives)
            mask_lat.append(time.perf_counter() - t0)
            probe.remove(c, negative=(j % 3 == 2))
        probe.add(c, negative=(j % 3 == 2))
    res["probe_click_to_map_ms_median"] = median_ms(p_lat)
    res["probe_fit_ms_median"] = median_ms(fit_lat)
    res["probe_connected_mask_ms_median"] = median_ms(mask_lat)
    del probe
    res["query_error_bound"] = round(search.query_error(), 5)
    t0 = time.perf_counter()
    matches = search.top_matches(20)
    res["top20_nms_ms"] = round(1e3 * (time.perf_counter() - t0), 1)
    res["top20_first"] = [m.grid_index for m in matches[:3]]
    from usearch.index import search as usearch_search

    q = search.query()
    qs = np.clip(np.rint(q * 127 / np.abs(q).max()), -127, 127).astype(np.int8) if dtype == "int8" else q.astype(dtype)
    t0 = time.perf_counter()
    usearch_search(fm.vectors, qs, 1000, metric="ip", exact=True, threads=args.threads or 0)
    res["usearch_exact_top1000_ms"] = round(1e3 * (time.perf_counter() - t0), 1)
    mem.__exit__()
    res["peak_rss_over_store"] = round((mem.peak - rss0) / res["store_mb"], 2)

    # kNN: 500 support points, classes = cluster id mod 5
    if dtype in args.knn_dtypes:
        sup, cls = knn_support(args, region)
        res["loadavg_before_knn"] = [round(x, 2) for x in os.getloadavg()]
        res.update(bench_knn(args, fm, sup, cls))
    # ---- baselines: one float32 copy of the store
    del search
    gc.collect()
    f32 = fm.decode(fm.vectors) if dtype != "float32" else fm.vectors
    bl, agree = [], []
    for q in maps:
        ours = fm.dots(q, kernel=res["kernel"], threads=args.threads)
        for _ in range(args.reps):
            t0 = time.perf_counter()
            ref = f32 @ q
            bl.append(time.perf_counter() - t0)
        agree.append(top_agreement(ours, ref))
        res.setdefault("max_abs_err", 0.0)
        res["max_abs_err"] = max(res["max_abs_err"], float(np.abs(ours - ref).max()))
    res["numpy_f32_matvec_ms_median"] = median_ms(bl)
    res["speedup_vs_numpy_f32"] = round(res["numpy_f32_matvec_ms_median"] / res["click_to_map_ms_median"], 2)
    res["top1pct_agreement_min"] = round(min(agree), 4)
    if dtype == "float16":
        t0 = time.perf_counter()
        fm.vectors[: grid.size // 16] @ q.astype(np.float16)
        res["numpy_f16_matvec_ms_est"] = round(16e3 * (time.perf_counter() - t0), 1)
    if dtype in args.knn_dtypes:
        res.update(bench_knn_numpy(args, fm, f32, sup, cls, res["knn_full_s"]))
    del f32, fm, vectors
    gc.collect()
    return res


def knn_support(args, region):
    """``args.support`` random grid points; class = the point's cluster id mod 5, plus 1."""
    sup = np.random.default_rng(2).integers(0, region.size, args.support)
    return sup, region.ravel()[sup] % 5 + 1


def vote(nn, sims, cls):
    """Plain 5-NN vote with the engine's tie rule (larger summed similarity, then smaller class id)."""
    c = cls[nn]
    votes = np.stack([(c == j).sum(1) for j in range(1, 6)], 1)
    close = np.stack([np.where(c == j, sims, 0).sum(1, dtype=np.float64) for j in range(1, 6)], 1)
    return np.argmax(np.where(votes == votes.max(1, keepdims=True), close, -np.inf), 1) + 1


def bench_knn(args, fm, sup, cls) -> dict:
    """The engine's kNN (slice and whole grid), its GEMM and top-k parts alone, and usearch exact search."""
    import torch
    from usearch.index import Index

    from napari_seisfm.search.kernels import support_dots

    res: dict = {}
    grid, size = fm.grid, fm.shape[0]
    pts = np.stack(np.unravel_index(sup, grid.shape), 1)
    seg = KnnSegmenter(fm, pts, cls, k=5, threads=args.threads)
    res["knn_backend"], res["knn_workers"] = seg.backend, seg.threads
    seg.segment_slice(0, 0)  # warm-up (oneDNN primitive creation)
    ts = []
    for rep in range(args.reps):
        t0 = time.perf_counter()
        seg.segment_slice(0, (size // 2 + rep) % size)
        ts.append(time.perf_counter() - t0)
    res["knn_slice_points"] = size * size
    res["knn_slice_ms_median"] = median_ms(ts)
    n_full = grid.size if args.knn_full <= 0 else min(args.knn_full, grid.size)
    t0 = time.perf_counter()
    if n_full == grid.size:
        seg.segment()
    else:
        seg.classify(np.arange(n_full))
    dt = time.perf_counter() - t0
    res["knn_full_queries_timed"] = n_full
    res["knn_full_s"] = round(dt * grid.size / n_full, 2)
    res["knn_us_per_query"] = round(1e6 * dt / n_full, 4)
    # what dominates: the GEMM and the top-k alone, one thread, 2048-query blocks (us per query per core)
    n_part = min(args.baseline_queries, grid.size)
    dots = seg._dots
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t_gemm = t_topk = 0.0
        for a in range(0, n_part, 2048):
            t0 = time.perf_counter()
            s = dots(fm.vectors[a : a + 2048])
            t1 = time.perf_counter()
            torch.topk(s, 6, dim=1)
            t_topk += time.perf_counter() - t1
            t_gemm += t1 - t0
        res["knn_1thread_gemm_us_per_query"] = round(1e6 * t_gemm / n_part, 4)
        res["knn_1thread_topk_us_per_query"] = round(1e6 * t_topk / n_part, 4)
        if seg.backend != "torch-f32":
            f32 = support_dots(fm.vectors[sup], backend="torch-f32")
            t0 = time.perf_counter()
            for a in range(0, n_part, 2048):
                f32(fm.vectors[a : a + 2048])
            res["knn_1thread_f32_gemm_us_per_query"] = round(1e6 * (time.perf_counter() - t0) / n_part, 4)
    finally:
        torch.set_num_threads(before)
    # usearch Index over the support set, exact search (the previous engine), same threads
    usd = {"int8": "i8", "float16": "f16", "float32": "f32"}[fm.dtype]
    index = Index(ndim=fm.dim, metric="ip", dtype=usd)
    index.add(np.arange(len(sup)), fm.vectors[sup])
    n_u = min(args.baseline_queries, grid.size)
    t0 = time.perf_counter()
    found = index.search(fm.vectors[:n_u], 5, exact=True, threads=args.threads or 0)
    dt = time.perf_counter() - t0
    res["usearch_exact_queries_timed"] = n_u
    res["usearch_exact_knn_full_s_est"] = round(dt * grid.size / n_u, 2)
    res["knn_speedup_vs_usearch"] = round(res["usearch_exact_knn_full_s_est"] / res["knn_full_s"], 2)
    ours = seg.classify(np.arange(n_u))[0]
    keys = np.asarray(found.keys).reshape(n_u, -1).astype(np.int64)
    sims = 1.0 - np.asarray(found.distances, np.float64).reshape(n_u, -1)
    res["knn_class_agreement_with_usearch"] = round(float((ours == vote(keys, sims, cls)).mean()), 4)
    return res


def bench_knn_numpy(args, fm, f32, sup, cls, seg_full_s) -> dict:
    """numpy float32 GEMM + argpartition baseline (extrapolated) and class agreement with the engine."""
    out: dict = {}
    n_b = min(args.baseline_queries, fm.grid.size)
    s32 = f32[sup]
    t0 = time.perf_counter()
    sims = f32[:n_b] @ s32.T
    nn = np.argpartition(-sims, 5, axis=1)[:, :5]
    base_cls = vote(nn, np.take_along_axis(sims, nn, 1), cls)
    dt = time.perf_counter() - t0
    out["numpy_gemm_argpartition_queries_timed"] = n_b
    out["numpy_knn_full_s_est"] = round(dt * fm.grid.size / n_b, 2)
    out["knn_speedup_vs_numpy"] = round(out["numpy_knn_full_s_est"] / seg_full_s, 2)
    seg = KnnSegmenter(fm, np.stack(np.unravel_index(sup, fm.shape), 1), cls, k=5, threads=args.threads)
    c = seg.classify(np.arange(n_b))[0]
    out["knn_class_agreement_with_numpy"] = round(float((c == base_cls).mean()), 4)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="grid edge (size^3 vectors; default %(default)s)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--dtypes", default="int8,float16")
    p.add_argument("--knn-dtypes", default="int8")
    p.add_argument("--clicks", type=int, default=5)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--support", type=int, default=500)
    p.add_argument("--knn-full", type=int, default=0, help="queries timed for the whole-grid kNN (0: all; else extrapolated)")
    p.add_argument("--baseline-queries", type=int, default=262144, help="queries timed for the numpy kNN baseline (extrapolated)")
    args = p.parse_args(argv)
    args.knn_dtypes = args.knn_dtypes.split(",")
    out = {
        "size": args.size,
        "n": args.size**3,
        "dim": args.dim,
        "support": args.support,
        "memory_metric": "(peak VmRSS sampled every 2 ms - VmRSS before the store was built) / store bytes; covers building the store, all clicks, top matches; not the kNN phase nor the float32 baseline copy",
        "results": [bench_dtype(args, d) for d in args.dtypes.split(",")],
    }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
