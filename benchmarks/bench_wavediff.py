"""Forward-model throughput: maps per second batched vs one map at a time, in the same run, for the
tiny setup and for OpenFWI's geometry (70 x 70, 5 shots, 1000 steps). Prints JSON.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_wavediff.py [--n 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def rate(fn, n):
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def main():
    from napari_seisfm.wavediff.data import SETUPS, velocity_maps
    from napari_seisfm.wavediff.forward import simulate

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16, help="maps per setup")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    out = {"device": args.device, "threads": torch.get_num_threads(), "n": args.n}
    for name in ("tiny", "openfwi"):
        setup = SETUPS[name]
        v = torch.as_tensor(velocity_maps(args.n, setup, seed=1)).to(args.device)
        batched = rate(lambda: simulate(v, setup.geometry), args.n)
        single = rate(lambda: [simulate(m, setup.geometry) for m in v], args.n)
        out[name] = {"maps_per_s_batched": round(batched, 3), "maps_per_s_single": round(single, 3),
                     "batched_over_single": round(batched / single, 2)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
