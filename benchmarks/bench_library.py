"""Survey-library index: build time per million vectors, query latency and recall@100 against exact search.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_library.py                        # 1e5, 3e5, 1e6 vectors
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_library.py --sizes 100000 1000000 3000000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_library.py --sizes 3000000 --connectivity 16   # usearch's default graph

The index is built exactly as ``napari_seisfm.search.library`` builds it (usearch HNSW, int8 scalars, cosine,
its connectivity, default expansion_add, batches of ``BATCH``), saved and reopened memory-mapped
(``Index.restore(view=True)``), then searched one query at a time (a click) for the top 100 at several
``expansion_search`` beam widths. ``--connectivity`` overrides the graph's edges per node (the library's
``CONNECTIVITY``, 32; usearch's default is 16) to compare graphs. Exact top 100: brute-force cosine over the same int8 vectors (numpy float32, in blocks of 2^20 rows).
Vectors: structured like feature stores (256 cluster centres + noise, unit length, ``round(v * 127)``); queries
are stored vectors (clicks land on grid points). Latency is the median over the queries, one search thread.

Projection to 100 M vectors: build seconds from the per-million rate at the largest size (HNSW build grows a
little faster than linear: the rates per size show how much), index bytes linearly, latency by a least-squares
line in log(N) (HNSW search cost grows with the graph's depth). Recall is measured, not projected: the rows show
its trend with N. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_seisfm.search.library import BATCH, CONNECTIVITY, DEFAULT_EXPANSION

TARGET = 100_000_000


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    out = np.empty((n, dim), np.int8)
    for a in range(0, n, 1 << 18):
        b = min(a + (1 << 18), n)
        v = centres[rng.integers(0, 256, b - a)] + 0.8 * rng.standard_normal((b - a, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[a:b] = np.clip(np.rint(v * 127), -127, 127)
    return out


def exact_top(data: np.ndarray, queries: np.ndarray, top: int, block: int = 1 << 20) -> np.ndarray:
    """Brute-force cosine top ``top``, in blocks of ``block`` rows (memory stays ~0.5 GB at any N)."""
    q = queries.astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.zeros((len(q), 0), np.int64)
    for a in range(0, len(data), block):
        unit = data[a : a + block].astype(np.float32)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        s = np.concatenate([best_s, q @ unit.T], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(a, a + len(unit)), (len(q), len(unit)))], axis=1)
        keep = np.argpartition(-s, top, axis=1)[:, :top]
        best_s, best_i = np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1)
    return best_i


def main(argv=None) -> int:
    from usearch.index import Index

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--top", type=int, default=100)
    p.add_argument("--expansions", type=int, nargs="+", default=[128, 256, DEFAULT_EXPANSION])
    p.add_argument("--threads", type=int, default=2, help="build threads (search: one query, one thread)")
    p.add_argument("--connectivity", type=int, default=CONNECTIVITY, help="HNSW edges per node (default: the library's)")
    a = p.parse_args(argv)
    out = {
        "dim": a.dim,
        "connectivity": a.connectivity,
        "top": a.top,
        "queries": a.queries,
        "build_threads": a.threads,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_start": os.getloadavg()[0],
        "sizes": {},
    }
    lat: dict[int, list[float]] = {e: [] for e in a.expansions}
    rows = []
    for n in a.sizes:
        data = vectors(n, a.dim)
        rng = np.random.default_rng(1)
        qi = rng.choice(n, a.queries, replace=False)
        truth = exact_top(data, data[qi], a.top)
        index = Index(ndim=a.dim, metric="cos", dtype="i8", connectivity=a.connectivity)
        keys = np.arange(n, dtype=np.uint64)
        t0 = time.perf_counter()
        for s in range(0, n, BATCH):
            index.add(keys[s : s + BATCH], data[s : s + BATCH], threads=a.threads)
        t_build = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "vectors.usearch"
            index.save(str(f))
            size = f.stat().st_size
            del index
            view = Index.restore(str(f), view=True)
            row = {
                "vectors": n,
                "build_s": round(t_build, 2),
                "build_s_per_million": round(t_build / n * 1e6, 2),
                "index_bytes_per_vector": round(size / n, 1),
                "connectivity": view.connectivity,
                "load_average": os.getloadavg()[0],
            }
            for e in a.expansions:
                view.expansion_search = e
                ts, hits = [], 0
                for q, want in zip(qi, truth):
                    t0 = time.perf_counter()
                    found = view.search(data[q], a.top, threads=1)
                    ts.append(time.perf_counter() - t0)
                    hits += len(np.intersect1d(np.asarray(found.keys, np.int64), want))
                row[f"expansion_{e}"] = {
                    "recall_at_top": round(hits / (a.top * len(qi)), 4),
                    "latency_ms_median": round(1e3 * float(np.median(ts)), 3),
                    "latency_ms_p95": round(1e3 * float(np.percentile(ts, 95)), 3),
                }
                lat[e].append(row[f"expansion_{e}"]["latency_ms_median"])
            del view
        out["sizes"][str(n)] = row
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    logn = np.log([r["vectors"] for r in rows])
    proj = {
        "vectors": TARGET,
        "build_hours_at_largest_rate": round(rows[-1]["build_s_per_million"] * TARGET / 1e6 / 3600, 2),
        "index_gb": round(rows[-1]["index_bytes_per_vector"] * TARGET / 1e9, 1),
    }
    for e, ys in lat.items():
        if len(ys) > 1:
            b, c = np.polyfit(logn, ys, 1)
            # a noisy fit can slope down; never project below what the largest size measured
            proj[f"latency_ms_expansion_{e}"] = round(max(float(c + b * np.log(TARGET)), ys[-1]), 2)
    out["projected"] = proj
    out["goal"] = "recall >= 0.95 at < 50 ms per query, 100 M vectors"
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
