"""Whole-grid kNN against its int8 GEMM floor, with the top-k of before in the same run (issue 24).

    .venv/bin/python benchmarks/bench_knn_topk.py                          # 192^3 grid, quiet then beside 2 busy processes
    .venv/bin/python benchmarks/bench_knn_topk.py --size 128 --reps 2 --load 0

The store is bench_segment.py's (int8 unit vectors around 7 centres, 64-d), the support 100 points per class (700),
k = 5, the engine's default worker threads, inside the product's thread policy (one BLAS/OpenMP/torch thread per
worker, napari_seisfm/threads.py). Interleaved rep by rep, medians of wall and CPU seconds:

- ``gemm``: the oneDNN int8 GEMM alone over every grid point, in the engine's own blocks and threads (the floor:
  no kNN can skip computing the similarities);
- ``before``: ``KnnSegmenter.segment()`` with each 2048-row block's similarities made at once and k argmax rounds
  over them (``sub = 0``: the engine before issue 24);
- ``now``: as shipped: GEMM and rounds per 256 rows, whose similarities stay in L2 through the k rounds.

A fused GEMM with a running top-k (no similarity matrix at all) would need a compiled kernel: oneDNN's matmul
exposes no top-k epilogue through torch, and ``torch.compile`` needs a C++ compiler at run time. Classes of
``now`` and ``before`` must be identical (checked). Ratios: ``now / gemm`` (goal <= 2), ``before / now``,
loaded/quiet. Prints JSON with the load average of each phase.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_segment import store  # noqa: E402

from napari_seisfm.search import KnnSegmenter  # noqa: E402
from napari_seisfm.search.knn import SUB  # noqa: E402
from napari_seisfm.threads import one_thread_per_worker  # noqa: E402


def gemm_only(seg: KnnSegmenter) -> None:
    """The similarities of every grid point, in the engine's blocks and threads, nothing else."""
    v = seg.features.vectors
    n = len(v)
    sub = SUB  # the engine's GEMM size now (cheaper per row than whole 2048-row blocks): the lower floor

    def work(ab):
        a, b = ab
        for s in range(a, b, sub):
            seg._dots(v[s : min(s + sub, b)])

    bounds = [(a, min(a + seg.block, n)) for a in range(0, n, seg.block)]
    if seg._pool is None:
        for ab in bounds:
            work(ab)
    else:
        list(seg._pool.map(work, bounds))


def timed(fn) -> tuple[float, float, object]:
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    r = fn()
    return time.perf_counter() - t0, time.process_time() - c0, r


def phase(seg: KnnSegmenter, reps: int) -> dict:
    res = {k: {"wall": [], "cpu": []} for k in ("gemm", "before", "now")}
    load0 = [round(x, 2) for x in os.getloadavg()]
    same = True
    for r in range(reps):
        order = ("gemm", "before", "now") if r % 2 == 0 else ("now", "before", "gemm")
        classes = {}
        for k in order:
            if k == "gemm":
                w, c, _ = timed(lambda: gemm_only(seg))
            else:
                seg.sub = 0 if k == "before" else SUB
                w, c, out = timed(seg.segment)
                classes[k] = out.classes
            res[k]["wall"].append(w)
            res[k]["cpu"].append(c)
        same &= bool(np.array_equal(classes["before"], classes["now"]))
        del classes
    seg.sub = SUB
    med = {k: {m: round(float(np.median(v[m])), 3) for m in v} for k, v in res.items()}
    return {
        "loadavg_start": load0,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "seconds": med,
        "now_over_gemm_wall": round(med["now"]["wall"] / med["gemm"]["wall"], 2),
        "now_over_gemm_cpu": round(med["now"]["cpu"] / med["gemm"]["cpu"], 2),
        "before_over_gemm_wall": round(med["before"]["wall"] / med["gemm"]["wall"], 2),
        "before_over_now_wall": round(med["before"]["wall"] / med["now"]["wall"], 2),
        "before_over_now_cpu": round(med["before"]["cpu"] / med["now"]["cpu"], 2),
        "identical_classes": same,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--load", type=int, default=2, help="busy processes of the loaded phase (0: none)")
    a = p.parse_args(argv)
    fm, truth = store(a.size, 64, 7)
    rng = np.random.default_rng(1)
    pts = np.concatenate([np.argwhere(truth == c)[rng.choice(int((truth == c).sum()), 100, replace=False)] for c in range(7)])
    lab = truth[tuple(pts.T)].astype(int) + 1
    out = {"grid_points": int(fm.grid.size), "support": len(pts), "k": 5}
    with one_thread_per_worker():
        seg = KnnSegmenter(fm, pts, lab, k=5)
        out.update(backend=seg.backend, threads=seg.threads)
        seg.segment_slice(0, 0)  # warm: oneDNN primitives, the thread pool
        out["quiet"] = phase(seg, a.reps)
        if a.load:
            procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(a.load)]
            try:
                time.sleep(1.0)
                out["loaded"] = phase(seg, a.reps)
            finally:
                for pr in procs:
                    pr.kill()
                    pr.wait()
            out["loaded"]["busy_processes"] = a.load
            out["loaded_over_quiet_wall"] = {
                k: round(out["loaded"]["seconds"][k]["wall"] / out["quiet"]["seconds"][k]["wall"], 2)
                for k in ("gemm", "before", "now")
            }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
