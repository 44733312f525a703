"""What the CRC-32C checksums of new feature stores cost (issue 23, D4): writing every chunk, reading the whole
store (what every search does first) and `seisfm check`'s verify, with and without the checksum codec.

Both variants are built and timed in the same run, interleaved repeat by repeat (a busy shared machine moves
both alike); the ratios are the result. The baseline is zarr's default chain (zstd level 0, no checksum), what
stores were written with before. Vectors: a smooth random field (so zstd finds some structure, like real
embeddings) through the store's own encoding (unit length, int8). Prints JSON.

    nice -n 10 .venv/bin/python benchmarks/bench_checksums.py [--grid 64] [--dim 64] [--dtype int8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def vectors(grid: int, dim: int, seed: int = 0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    v = rng.standard_normal((grid, grid, grid, dim)).astype(np.float32)
    return gaussian_filter(v, sigma=(2, 2, 2, 0)) + 0.1 * v


def build(path: Path, data: np.ndarray, dtype: str, checksums: bool):
    from zarr.codecs import ZstdCodec

    from napari_seisfm.store import volume as features
    from napari_seisfm.store.grid import GridSpec
    from napari_seisfm.store.volume import FeatureVolume

    real = features._compressors
    if not checksums:
        features._compressors = lambda: (ZstdCodec(level=0, checksum=False),)
    try:
        shutil.rmtree(path, ignore_errors=True)
        grid = GridSpec(data.shape[:3], (2, 2, 2))
        t0 = time.perf_counter()
        fv = FeatureVolume.create(path, grid=grid, dim_in=data.shape[3], dtype=dtype, model="bench", cube_fingerprint="x")
        for idx, sl in fv.chunk_slices():
            fv.write_chunk(idx, data[sl])
        fv.mark_complete()
        return time.perf_counter() - t0
    finally:
        features._compressors = real


def main():
    from napari_seisfm.store.volume import FeatureVolume

    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=64, help="grid points per axis (default 64: 262 144 vectors)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--dtype", default="int8", choices=("int8", "float16", "float32"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = vectors(args.grid, args.dim)
    tmp = Path(tempfile.mkdtemp())
    times = {k: {"write": [], "load": [], "verify": []} for k in ("baseline", "crc32c")}
    sizes = {}
    try:
        for _ in range(args.repeat):
            for name, sums in (("baseline", False), ("crc32c", True)):
                path = tmp / f"{name}.zarr"
                times[name]["write"].append(build(path, data, args.dtype, sums))
                fv = FeatureVolume.open(path)
                assert fv.checksums == sums
                t0 = time.perf_counter()
                fv.load()
                times[name]["load"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                assert fv.verify() == []
                times[name]["verify"].append(time.perf_counter() - t0)
                sizes[name] = sum(p.stat().st_size for p in (path / "embeddings").rglob("*") if p.is_file())
        chunk_files = sum(1 for p in (tmp / "crc32c.zarr" / "embeddings").rglob("*") if p.is_file() and p.name != "zarr.json")
        med = {k: {op: float(np.median(v)) for op, v in ops.items()} for k, ops in times.items()}
        out = {
            "grid": [args.grid] * 3,
            "dim": args.dim,
            "dtype": args.dtype,
            "chunk_files": chunk_files,
            "raw_megabytes": round(data.size * np.dtype(args.dtype).itemsize / 2**20, 1),
            "stored_megabytes": {k: round(v / 2**20, 2) for k, v in sizes.items()},
            "seconds_median": {k: {op: round(t, 4) for op, t in ops.items()} for k, ops in med.items()},
            "ratio_crc32c_over_baseline": {
                op: round(med["crc32c"][op] / med["baseline"][op], 3) for op in ("write", "load", "verify")
            },
            "repeat": args.repeat,
            "loadavg": os.getloadavg(),
        }
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
