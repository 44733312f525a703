"""Random sub-volume reads from SEG-Y against .sgz: the access pattern of extraction and pretraining.

    .venv/bin/python benchmarks/bench_read.py [--shape 192,192,384] [--window 64] [--reads 40]

A synthetic cube is written as SEG-Y (the project's writer, IEEE float, inline sorted) and converted
with ``seisfm convert``'s function at 8 bits per voxel, with seismic-zfp's default block shape
(4, 4, -1: fast lines) and with cubic 16^3 blocks. Then ``--reads`` windows of ``--window``^3 samples
at the same random positions are read from each through ``open_cube`` (what extraction and the
pretraining data loader call), and reads per second and MB/s (of float32 delivered) are printed with
the ratio against SEG-Y, measured in the same run, twice: with the files in the page cache (warm:
decoding and access cost only; SEG-Y is memory-mapped IEEE float, a copy) and with each file's pages
dropped before every read (cold: ``posix_fadvise(DONTNEED)`` on that file only, so every read goes to
the disk, where the 4x smaller .sgz reads less). File sizes and the SNR of each .sgz are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_seisfm.cube import Geometry, open_cube
from napari_seisfm.io.segy import write_segy
from napari_seisfm.io.sgz import convert_segy
from napari_seisfm.synthetic import make_survey


def evict(path: Path) -> None:
    """Drop this file's pages from the page cache (posix_fadvise DONTNEED; this file only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_rate(path: Path, positions, window: int, cold: bool) -> dict:
    with open_cube(path) as cube:
        cube[0:1, 0:1, 0:1]  # open costs out of the timing
        dt, total = 0.0, 0
        for a, b, c in positions:
            if cold:
                evict(path)
            t0 = time.perf_counter()
            total += np.asarray(cube[a : a + window, b : b + window, c : c + window]).size
            dt += time.perf_counter() - t0
    return {"reads_per_s": len(positions) / dt, "MB_per_s": total * 4 / dt / 1e6, "seconds": dt}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="192,192,384")
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--reads", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    w = args.window
    s = make_survey(shape, seed=args.seed)
    data = s.amplitude.astype(np.float32)
    rng = np.random.default_rng(args.seed)
    positions = [tuple(int(rng.integers(0, n - w + 1)) for n in shape) for _ in range(args.reads)]
    report = {"cube": list(shape), "window": w, "reads": args.reads}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        segy = write_segy(tmp / "cube.sgy", data, Geometry.regular(shape))
        files = {"segy": segy}
        for name, blockshape in (("sgz 8 bit, blocks 4x4x256 (default)", None), ("sgz 8 bit, blocks 16x16x16", (16, 16, 16))):
            t0 = time.perf_counter()
            files[name] = convert_segy(segy, tmp / f"{len(files)}.sgz", bits=8, blockshape=blockshape)
            report[f"convert_s {name}"] = time.perf_counter() - t0
        rows = {}
        for cache in ("warm", "cold"):
            for name, path in files.items():
                rows[f"{name}, {cache} cache"] = read_rate(path, positions, w, cold=cache == "cold")
        for name, path in files.items():
            r = rows[f"{name}, warm cache"]
            r["file_MB"] = path.stat().st_size / 1e6
            if name != "segy":
                with open_cube(path) as cube:
                    y = cube.read()
                r["snr_db"] = float(10 * np.log10(np.mean(data**2) / np.mean((data - y) ** 2)))
        for name, r in rows.items():
            cache = name.rsplit(", ", 1)[1]
            r["reads_vs_segy"] = r["reads_per_s"] / rows[f"segy, {cache}"]["reads_per_s"]
        report["results"] = rows
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
