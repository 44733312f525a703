"""Click -> map, matches and mask against the memory floor, the code of before in the same run (issue 24).

    .venv/bin/python benchmarks/bench_click.py                       # 128^3, 192^3, 256^3 int8 x 64; quiet and loaded
    .venv/bin/python benchmarks/bench_click.py --sizes 96 --reps 3   # quick

Per grid size (structured int8 vectors of benchmarks/bench_search.py; three positive and one negative click;
both decisions), interleaved rep by rep, medians:

- ``floor``: one read of the store's bytes in two threads (a bitwise-or reduction over its uint64 view):
  the time no map can beat;
- ``kernel``: the dot products alone (SimSIMD, blocked as the map now runs them, no sigmoid);
- ``map_before`` / ``map``: the probe's probability map (or the centroid map): SimSIMD's threaded cdist, a scale
  pass and a sigmoid pass before; blocks with the sigmoid in cache now (tests/click_reference.py is the code of
  before, tests/test_click_speed.py checks both give the same map);
- ``compute_before`` / ``compute``: the session's whole ``compute`` (map + mask + top matches): before, a copy
  of the map, ``ndimage.label`` over the whole grid and ``argpartition`` over every score; now
  ``ClickToMapSession.compute``; and its parts (``bodies``: labelling above the threshold, mask;
  ``matches``: the top 20).

Ratios: ``map / floor`` (goal <= 1.5), ``compute / map`` (goal <= 2), ``before / now``; growth exponents of
``compute`` over the sizes (time ~ N^k). ``--load 2`` then repeats everything beside two busy processes
(``python -c 'while 1: pass'``, started and ended here) and reports loaded/quiet. Prints JSON; the load
average is recorded beside every phase.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import click_reference as before  # noqa: E402
from bench_search import build  # noqa: E402

from napari_seisfm.search import FeatureMatrix  # noqa: E402
from napari_seisfm.search.region import Bodies  # noqa: E402
from napari_seisfm.session import ClickToMapSession, bodies_above  # noqa: E402
from napari_seisfm.store.grid import GridSpec  # noqa: E402


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def busy(n: int) -> list:
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def stop(procs) -> None:
    for p in procs:
        p.kill()
        p.wait()


def fit_exponent(ns, ts) -> float | None:
    if len(ns) < 2:
        return None
    return round(float(np.polyfit(np.log(ns), np.log(ts), 1)[0]), 3)


class Floor:
    """Read every byte of the store once, in ``threads`` threads."""

    def __init__(self, vectors: np.ndarray, threads: int):
        words = vectors.reshape(-1).view(np.uint64)
        bounds = np.linspace(0, len(words), threads + 1).astype(int)
        self.parts = [words[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        self.pool = ThreadPoolExecutor(threads)

    def __call__(self):
        list(self.pool.map(np.bitwise_or.reduce, self.parts))


def session_for(fm, decision: str, clicks) -> ClickToMapSession:
    s = ClickToMapSession(fm, decision=decision)
    for p, negative in clicks:
        s.add_click(p, negative=negative, space="grid")
    s.compute()  # warm: the probe's standardisation statistics, thread pools
    return s


def measure(fm, clicks, reps: int) -> dict:
    threads = fm.kernel().threads
    floor = Floor(fm.vectors, threads)
    out = {}
    for decision in ("probe", "centroid"):
        session = session_for(fm, decision, clicks)
        search = session._search
        snap = session.snapshot()
        threshold = session.compute(snap).threshold
        kernel = fm.kernel()
        q = search.query()
        t = {
            k: []
            for k in (
                "floor",
                "kernel",
                "map_before",
                "map",
                "compute_before",
                "compute",
                "bodies",
                "matches",
                "bodies_before",
                "matches_before",
            )
        }
        for _ in range(reps):
            gc.collect()
            t0 = time.perf_counter()
            floor()
            t["floor"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            kernel(q)
            t["kernel"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            old = before.probe_scores(search, threads) if decision == "probe" else before.dots(fm, search.query(), threads)
            t["map_before"].append(time.perf_counter() - t0)
            search._scores = None
            t0 = time.perf_counter()
            new = search.scores()
            t["map"].append(time.perf_counter() - t0)
            assert np.array_equal(old, new, equal_nan=True)
            del old, new
            gc.collect()
            t0 = time.perf_counter()
            score_b, mask_b, matches_b = before.compute(
                search, snap.positives, threshold, session.n_matches, session.match_radius, threads=threads
            )
            t["compute_before"].append(time.perf_counter() - t0)
            search._scores = None
            t0 = time.perf_counter()
            r = session.compute(snap)
            t["compute"].append(time.perf_counter() - t0)
            assert np.array_equal(r.mask, mask_b)
            same_matches = [m.grid_index for m in r.matches] == [m.grid_index for m in matches_b]
            del score_b, mask_b
            # the parts, on this map
            t0 = time.perf_counter()
            bodies, mask, clicked = bodies_above(r.score, threshold, snap.positives)
            t["bodies"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            search.top_matches(session.n_matches, radius=session.match_radius, bodies=bodies, skip_bodies=clicked)
            t["matches"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            labels, _, clicked_b = before.bodies_above(r.score, threshold, snap.positives)
            t["bodies_before"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            before.top_matches(
                search, search.scores(), session.n_matches, radius=session.match_radius, bodies=labels, skip_bodies=clicked_b
            )
            t["matches_before"].append(time.perf_counter() - t0)
            del labels, bodies, mask, r
        med = {k: round(1e3 * float(np.median(v)), 2) for k, v in t.items()}
        above = int(len(Bodies.above(search.score_map(), threshold).index))
        out[decision] = {
            "ms": med,
            "threshold": threshold,
            "fraction_above": round(above / fm.grid.size, 5),
            "same_matches_as_before": same_matches,
            "map_over_floor": round(med["map"] / med["floor"], 2),
            "kernel_over_floor": round(med["kernel"] / med["floor"], 2),
            "map_before_over_floor": round(med["map_before"] / med["floor"], 2),
            "compute_over_map": round(med["compute"] / med["map"], 2),
            "compute_before_over_map_before": round(med["compute_before"] / med["map_before"], 2),
            "speedup_map": round(med["map_before"] / med["map"], 2),
            "speedup_compute": round(med["compute_before"] / med["compute"], 2),
        }
        del session, search
        gc.collect()
    out["threads"] = threads
    return out


def phase(stores, clicks_of, reps: int) -> dict:
    res = {"loadavg_start": loadavg(), "sizes": {}}
    for size, fm in stores.items():
        res["sizes"][size] = measure(fm, clicks_of(size), reps)
    res["loadavg_end"] = loadavg()
    ns = [s**3 for s in stores]
    res["growth_exponent"] = {
        f"{d}_{k}": fit_exponent(ns, [res["sizes"][s][d]["ms"][k] for s in stores])
        for d in ("probe", "centroid")
        for k in ("map", "compute", "compute_before", "floor")
    }
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="128,192,256", help="grid edges (size^3 vectors of 64 int8)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--load", type=int, default=2, help="busy processes of the loaded phase (0: quiet only)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = {}
    for size in sizes:
        vectors, _ = build(size, 64, "int8")
        grid = GridSpec((size,) * 3, (4, 4, 4))
        stores[size] = FeatureMatrix(vectors, np.ones(grid.size, bool), grid, quant_scale=127.0)

    def clicks_of(size):
        rng = np.random.default_rng(1)
        return [(tuple(int(x) for x in rng.integers(0, size, 3)), k == 3) for k in range(4)]

    out = {
        "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0))},
        "dim": 64,
        "dtype": "int8",
        "quiet": phase(stores, clicks_of, args.reps),
    }
    if args.load:
        procs = busy(args.load)
        try:
            time.sleep(1.0)
            out["loaded"] = phase(stores, clicks_of, args.reps)
        finally:
            stop(procs)
        out["loaded"]["busy_processes"] = args.load
        out["loaded_over_quiet"] = {
            str(s): {
                d: {
                    k: round(out["loaded"]["sizes"][s][d]["ms"][k] / out["quiet"]["sizes"][s][d]["ms"][k], 2)
                    for k in ("floor", "map", "map_before", "compute", "compute_before")
                }
                for d in ("probe", "centroid")
            }
            for s in sizes
        }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
