"""Forward-model throughput: maps per second batched vs one map at a time, and the in-place time loop against
the loop of before (a new tensor per term per step, tests/forward_reference.py), in the same run, for the tiny
setup and for OpenFWI's geometry (70 x 70, 5 shots, 1000 steps). Prints JSON.

    .venv/bin/python benchmarks/bench_wavediff.py [--n 8] [--device cpu] [--reps 3] [--load 2]

Runs inside the product's thread policy (one torch/OpenMP thread, napari_seisfm/threads.py). ``--load N``
repeats the before/now comparison beside N busy processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def rate(fn, n):
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def before_now(setups, maps, reps) -> dict:
    from forward_reference import _propagate as before

    from napari_seisfm.wavediff.forward import _propagate as now

    out = {"loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    for name, (setup, v) in setups.items():
        t = {"before": [], "now": []}
        for r in range(reps):
            for key, fn in (("before", before), ("now", now)) if r % 2 == 0 else (("now", now), ("before", before)):
                t0 = time.perf_counter()
                fn(v, setup.geometry)
                t[key].append(time.perf_counter() - t0)
        same = bool(torch.equal(before(v[:2], setup.geometry), now(v[:2], setup.geometry)))
        med = {k: float(np.median(x)) for k, x in t.items()}
        out[name] = {
            "s_per_map_before": round(med["before"] / maps, 4),
            "s_per_map_now": round(med["now"] / maps, 4),
            "now_over_before": round(med["now"] / med["before"], 3),
            "bit_identical": same,
        }
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main():
    from napari_seisfm.threads import one_thread_per_worker
    from napari_seisfm.wavediff.data import SETUPS, velocity_maps
    from napari_seisfm.wavediff.forward import simulate

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8, help="maps per setup")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--load", type=int, default=2, help="busy processes of the loaded phase (0: none)")
    args = ap.parse_args()
    with one_thread_per_worker():
        out = {"device": args.device, "threads": torch.get_num_threads(), "n": args.n}
        setups = {}
        for name in ("tiny", "openfwi"):
            setup = SETUPS[name]
            v = torch.as_tensor(velocity_maps(args.n, setup, seed=1)).to(args.device)
            setups[name] = (setup, v)
            batched = rate(lambda: simulate(v, setup.geometry), args.n)  # noqa: B023
            single = rate(lambda: [simulate(m, setup.geometry) for m in v], args.n)  # noqa: B023
            out[name] = {
                "maps_per_s_batched": round(batched, 3),
                "maps_per_s_single": round(single, 3),
                "batched_over_single": round(batched / single, 2),
            }
        out["quiet"] = before_now(setups, args.n, args.reps)
        if args.load:
            procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.load)]
            try:
                time.sleep(1.0)
                out["loaded"] = before_now(setups, args.n, args.reps)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            out["loaded_over_quiet_now"] = {
                k: round(out["loaded"][k]["s_per_map_now"] / out["quiet"][k]["s_per_map_now"], 2) for k in setups
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
