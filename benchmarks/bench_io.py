"""Inline, crossline and time-slice read throughput through Cube vs plain segyio / seismic-zfp calls.

Both sides read the same lines from the same files in the same run; the ratio says what the
abstraction costs. Prints JSON.

    .venv/bin/python benchmarks/bench_io.py [--size 200,200,400] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, items, repeat):
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in items:
            fn(i)
        best.append(time.perf_counter() - t0)
    return float(np.median(best)) / len(items)


def main():
    import segyio
    from seismic_zfp.read import SgzReader

    from napari_seisfm.cube import Geometry
    from napari_seisfm.io import open_cube
    from napari_seisfm.io.segy import write_segy
    from napari_seisfm.io.sgz import write_sgz

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="200,200,400")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.size.split(","))
    rng = np.random.default_rng(0)
    data = rng.standard_normal(shape).astype(np.float32)
    geometry = Geometry.regular(shape, first_inline=1000, first_crossline=2000)
    tmp = Path(tempfile.mkdtemp())
    sgy, sgz = write_segy(tmp / "c.sgy", data, geometry), write_sgz(tmp / "c.sgz", data, geometry, bits_per_voxel=8)
    picks = [rng.integers(0, n, 8) for n in shape]
    results = {"shape": shape, "megabytes": data.nbytes / 2**20}

    cube = open_cube(sgy)
    with segyio.open(sgy) as f:
        f.mmap()
        il, xl = f.ilines, f.xlines
        base = {
            "inline": timed(lambda i: f.iline[il[i]], picks[0], args.repeat),
            "crossline": timed(lambda i: f.xline[xl[i]], picks[1], args.repeat),
            "time_slice": timed(lambda i: f.depth_slice[i], picks[2], args.repeat),
        }
    ours = {
        "inline": timed(lambda i: cube[i], picks[0], args.repeat),
        "crossline": timed(lambda i: cube[:, i], picks[1], args.repeat),
        "time_slice": timed(lambda i: cube[:, :, i], picks[2], args.repeat),
    }
    results["segy"] = {k: {"cube_ms": 1e3 * ours[k], "segyio_ms": 1e3 * base[k], "ratio": ours[k] / base[k]} for k in ours}

    zcube = open_cube(sgz)
    with SgzReader(str(sgz)) as r:
        base = {
            "inline": timed(r.read_inline, picks[0], args.repeat),
            "crossline": timed(r.read_crossline, picks[1], args.repeat),
            "time_slice": timed(r.read_zslice, picks[2], args.repeat),
        }
    ours = {
        "inline": timed(lambda i: zcube[i], picks[0], args.repeat),
        "crossline": timed(lambda i: zcube[:, i], picks[1], args.repeat),
        "time_slice": timed(lambda i: zcube[:, :, i], picks[2], args.repeat),
    }
    results["sgz"] = {k: {"cube_ms": 1e3 * ours[k], "seismic_zfp_ms": 1e3 * base[k], "ratio": ours[k] / base[k]} for k in ours}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
