"""Interactivity of the read-outs: refit after a stroke, the visible slice, the whole grid; and the click map.

    .venv/bin/python benchmarks/bench_readouts.py --size 256                  # 16.7 M grid points x 64 int8
    .venv/bin/python benchmarks/bench_readouts.py --size 256 --whole linear,mlp   # whole grid for these only

The bounds (issue 22): refit after a stroke <= 1 s with 2 000 labelled points; the visible slice (one inline
of the grid, with the halo it needs) <= 0.5 s; the whole grid <= 15 s on 2 cores. The store is synthetic
(bench_segment.py's: classes in layers along time, int8 unit vectors around class centres), the support set
2 000 grid points. Each read-out runs with its defaults (the product's context scales and smoothing).

- ``first_fit_s``: the first fit on a matrix (the first 90 % of the points), with the one-off statistics
  (standardisation, context scales' spread, pooled grid of the wide scales) that every later fit reuses;
  ``refit_s``: the fit after a stroke: all the points, the last 10 % new (their context rows computed, the
  others' reused; median of ``--reps``); ``slice_s``: the visible slice (median); ``whole_s``: every grid point
  (only for the read-outs in ``--whole``; a forest over 16.7 M points takes many minutes).
- Click maps: the linear probe and the nonlinear decision (``mlp``) after 3 positive and 2 negative clicks:
  ``prepare_s`` (the one-off work the dock does while loading the store: the context's statistics and the
  background's inputs), the section preview and the whole map after the first 5 clicks (``first_*``), then
  after one more click (``next_*``: what each later click costs).

Baseline in the same run: the linear read-out (the previous default); every time is also given as a ratio to
the linear read-out's. Prints JSON with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from bench_segment import store

from napari_seisfm.search import SEGMENTERS, make_search, make_segmenter


def _median(f, reps):
    times = []
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--points", type=int, default=2000, help="labelled points (default: %(default)s)")
    p.add_argument("--readouts", default=",".join(m for m in SEGMENTERS if m != "knn"))
    p.add_argument("--whole", default="linear,mlp", help="read-outs timed on the whole grid (default: %(default)s)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-clicks", action="store_true", help="skip the click maps")
    p.add_argument(
        "--decisions",
        default="probe-plain,probe,mlp",
        help="click decisions timed; probe-plain: without context (default: %(default)s)",
    )
    a = p.parse_args(argv)
    fm, truth = store(a.size, a.dim, a.classes)
    rng = np.random.default_rng(1)
    per = a.points // a.classes
    pts = np.concatenate(
        [np.argwhere(truth == c)[rng.choice(int((truth == c).sum()), per, replace=False)] for c in range(a.classes)]
    )
    lab = truth[tuple(pts.T)].astype(int) + 1
    out = {
        "grid_points": int(fm.grid.size),
        "dim": a.dim,
        "classes": a.classes,
        "support": int(len(pts)),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_start": os.getloadavg(),
        "readouts": {},
    }
    mid = fm.shape[0] // 2
    whole = set(a.whole.split(",")) if a.whole else set()
    order = rng.permutation(len(pts))
    pts, lab = pts[order], lab[order]
    stroke = len(pts) // 10  # the last stroke: these points are new at the refit
    for name in a.readouts.split(","):
        r = {}
        t0 = time.perf_counter()
        make_segmenter(fm, pts[:-stroke], lab[:-stroke], name)
        r["first_fit_s"] = round(time.perf_counter() - t0, 3)

        def refit():
            fm.__dict__.get("_context_rows", {}).clear()  # forget the stroke's rows: every repetition computes them
            make_segmenter(fm, pts[:-stroke], lab[:-stroke], name)  # noqa: B023
            t0 = time.perf_counter()
            seg = make_segmenter(fm, pts, lab, name)  # noqa: B023
            return time.perf_counter() - t0, seg

        fits = [refit() for _ in range(a.reps)]
        r["refit_s"], seg = float(np.median([f[0] for f in fits])), fits[-1][1]
        r["slice_s"], s = _median(lambda: seg.segment_slice(0, mid), a.reps)  # noqa: B023
        r["slice_accuracy"] = round(float(np.mean(s.classes - 1 == truth[mid])), 4)
        if name in whole:
            t0 = time.perf_counter()
            w = seg.segment()
            r["whole_s"] = round(time.perf_counter() - t0, 2)
            r["accuracy"] = round(float(np.mean(w.classes - 1 == truth)), 4)
            del w
        out["readouts"][name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
        print(json.dumps({name: out["readouts"][name]}), flush=True)
    base = out["readouts"].get("linear")
    if base:
        for name, r in out["readouts"].items():  # noqa: B007
            r["ratio_to_linear"] = {
                k: round(r[k] / base[k], 2) for k in ("refit_s", "slice_s", "whole_s") if k in r and k in base and base[k] > 0
            }
    if not a.no_clicks:
        target = truth == a.classes // 2
        where, bg = np.argwhere(target), np.argwhere(~target)
        clicks = {}
        section = np.ravel_multi_index(np.ix_([mid], np.arange(fm.shape[1]), np.arange(fm.shape[2])), fm.shape).ravel()
        box = (slice(mid, mid + 1), slice(0, fm.shape[1]), slice(0, fm.shape[2]))

        def preview_of(search):  # the section on screen as the session computes it (ClickToMapSession.preview)
            return search.scores_box(box) if hasattr(search, "scores_box") else search.scores_at(section)

        for decision in a.decisions.split(","):
            if decision == "probe-plain":  # the baseline: the probe without context (the default before issue 22)
                from napari_seisfm.search import ProbeSearch

                s = ProbeSearch(fm, context=())
            else:
                s = make_search(fm, decision)
            t0 = time.perf_counter()
            s.prepare()  # what the dock does while loading the store
            prepare = time.perf_counter() - t0
            for i in (0, len(where) // 3, 2 * len(where) // 3):
                s.add(tuple(where[i]))
            for i in (0, len(bg) // 2):
                s.add(tuple(bg[i]), negative=True)
            t0 = time.perf_counter()
            preview_of(s)
            preview = time.perf_counter() - t0
            t0 = time.perf_counter()
            m = s.score_map()
            whole = time.perf_counter() - t0
            # one more click, as in a session: the one-off statistics and the background's rows are cached
            s.add(tuple(where[len(where) // 2]))
            t0 = time.perf_counter()
            preview_of(s)
            next_preview = time.perf_counter() - t0
            t0 = time.perf_counter()
            s.score_map()
            clicks[decision] = {
                "prepare_s": round(prepare, 2),
                "first_preview_s": round(preview, 3),
                "first_map_s": round(whole, 2),
                "next_preview_s": round(next_preview, 3),
                "next_map_s": round(time.perf_counter() - t0, 2),
                "iou": round(float(np.sum((m >= 0.5) & target) / np.sum((m >= 0.5) | target)), 4),
            }
            print(json.dumps({f"click {decision}": clicks[decision]}), flush=True)
        out["clicks"] = clicks
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
