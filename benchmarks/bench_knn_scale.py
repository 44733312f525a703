"""Whole-cube kNN at several cube sizes: today's engine against the previous top-k and usearch exact, same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_knn_scale.py                      # 64^3, 128^3, 192^3
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_knn_scale.py --sizes 64 128 192 256

The store is bench_segment.py's (int8 unit vectors around 7 centres in layers along time), the support set
100 grid points per class (700), k = 5, two worker threads. Rows:

- ``new``: ``KnnSegmenter.segment()`` as shipped (oneDNN int8 GEMM per block + k argmax rounds);
- ``previous``: the same segmenter with the top-k it had before (``torch.topk`` of k+1 and a stable re-sort of
  tied rows), copied here so the comparison stays runnable;
- ``usearch``: a usearch ``Index`` over the support set, exact search, same threads; timed on at most
  ``--usearch-queries`` grid points and scaled (its cost is linear in the queries);
- ``faiss``: ``IndexFlatIP`` on float32, only if faiss happens to be installed (not a dependency).

Every row reports seconds and the ratio to ``new``; classes are compared with ``new`` (must be identical for
``previous``). The last block projects each row to 16 777 216 grid points (256^3) by a least-squares line
``t = a + b * N`` through the measured sizes. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_segment import store  # noqa: E402

from napari_seisfm.search import KnnSegmenter  # noqa: E402

TARGET = 256**3


class PreviousKnn(KnnSegmenter):
    """The top-k before this change (napari_seisfm 4a76a9d): torch.topk(k+1), tied rows re-sorted stably."""

    def _neighbours(self, x):
        import torch

        k, n = self.k_used, self.n_support
        sims = self._dots(x)
        vals, idx = torch.topk(sims, min(k + 1, n), dim=1)
        vals, idx = vals.cpu().numpy(), idx.cpu().numpy()
        if k < n:
            tied = np.flatnonzero(vals[:, k - 1] == vals[:, k])
            if len(tied):
                s = sims[torch.from_numpy(tied)].cpu().numpy()
                order = np.argsort(-s, axis=1, kind="stable")[:, :k]
                idx[tied, :k] = order
                vals[tied, :k] = np.take_along_axis(s, order, 1)
            vals, idx = vals[:, :k], idx[:, :k]
        return idx, vals


def usearch_classes(fm, seg, queries: int, threads: int) -> tuple[np.ndarray, float, int]:
    """usearch exact kNN over the support set on the first ``queries`` grid points, plain vote (same tie rule
    is not attempted: agreement is reported on rows without a vote tie)."""
    from usearch.index import Index

    support = fm.vectors[seg.support_flat]
    index = Index(ndim=fm.dim, metric="ip", dtype="i8")
    index.add(np.arange(len(support)), support)
    q = fm.vectors[:queries]
    t0 = time.perf_counter()
    found = index.search(q, seg.k_used, exact=True, threads=threads)
    dt = time.perf_counter() - t0
    cls = seg.support_class[np.asarray(found.keys, np.int64)]
    votes = (cls[..., None] == np.arange(len(seg.class_ids))).sum(1)
    srt = np.sort(votes, axis=1)
    decided = srt[:, -1] > srt[:, -2]
    return np.asarray(seg.class_ids)[np.argmax(votes, axis=1)], dt, decided


def faiss_seconds(fm, seg, queries: int, threads: int) -> float | None:
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(fm.dim)
    index.add(fm.vectors[seg.support_flat].astype(np.float32))
    t0 = time.perf_counter()
    for a in range(0, queries, 1 << 16):
        index.search(fm.vectors[a : min(a + (1 << 16), queries)].astype(np.float32), seg.k_used)
    return time.perf_counter() - t0


def timed_segment(seg) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    r = seg.segment()
    return r.classes.reshape(-1), time.perf_counter() - t0


def project(sizes, seconds) -> float:
    n = np.asarray([s**3 for s in sizes], float)
    b, a = np.polyfit(n, np.asarray(seconds, float), 1) if len(n) > 1 else (seconds[0] / n[0], 0.0)
    return round(float(a + b * TARGET), 2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 192])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--usearch-queries", type=int, default=1 << 18)
    a = p.parse_args(argv)
    out = {
        "cores": len(os.sched_getaffinity(0)),
        "threads": a.threads,
        "k": a.k,
        "dim": a.dim,
        "support": a.classes * a.per_class,
        "load_average_start": os.getloadavg()[0],
        "sizes": {},
    }
    series: dict[str, list[float]] = {}
    for size in a.sizes:
        fm, truth = store(size, a.dim, a.classes)
        rng = np.random.default_rng(1)
        pts = np.concatenate(
            [np.argwhere(truth == c)[rng.choice(int((truth == c).sum()), a.per_class, replace=False)] for c in range(a.classes)]
        )
        lab = truth[tuple(pts.T)].astype(int) + 1
        row = {"grid_points": int(fm.grid.size), "load_average": os.getloadavg()[0]}
        new_seg = KnnSegmenter(fm, pts, lab, k=a.k, threads=a.threads)
        new, t_new = timed_segment(new_seg)
        prev, t_prev = timed_segment(PreviousKnn(fm, pts, lab, k=a.k, threads=a.threads))
        row["new_s"] = round(t_new, 3)
        row["new_us_per_point"] = round(1e6 * t_new / fm.grid.size, 3)
        row["backend"] = new_seg.backend
        row["previous_s"] = round(t_prev, 3)
        row["previous_over_new"] = round(t_prev / t_new, 2)
        row["previous_identical_classes"] = bool(np.array_equal(prev, new))
        nq = min(a.usearch_queries, fm.grid.size)
        u_cls, t_u, decided = usearch_classes(fm, new_seg, nq, a.threads)
        t_u_full = t_u * fm.grid.size / nq
        row["usearch_exact_queries_timed"] = nq
        row["usearch_exact_s"] = round(t_u_full, 3)
        row["usearch_over_new"] = round(t_u_full / t_new, 2)
        row["usearch_agreement_where_vote_decided"] = round(float(np.mean(u_cls[decided] == new[:nq][decided])), 5)
        t_f = faiss_seconds(fm, new_seg, nq, a.threads)
        if t_f is not None:
            row["faiss_flat_ip_s"] = round(t_f * fm.grid.size / nq, 3)
        row["accuracy"] = round(float(np.mean(new - 1 == truth.reshape(-1))), 4)
        out["sizes"][f"{size}^3"] = row
        for key in ("new_s", "previous_s", "usearch_exact_s", "faiss_flat_ip_s"):
            if key in row:
                series.setdefault(key, []).append(row[key])
        print(json.dumps({f"{size}^3": row}), file=sys.stderr, flush=True)
        del fm, truth, new, prev, new_seg
    proj = {key: project(a.sizes, v) for key, v in series.items()}
    proj["previous_over_new"] = round(proj["previous_s"] / proj["new_s"], 2)
    proj["usearch_over_new"] = round(proj["usearch_exact_s"] / proj["new_s"], 2)
    out["projected_to_16.7M_points_s"] = proj
    out["goal_s"] = 10.0
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
