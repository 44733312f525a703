"""How the default (attribute) embedder scales to a 1024^3 cube: old against new in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_embed_scale.py [--sizes 96,128,192] [--workers 2] [--line PATH]

"old" is the embedder as it was before issue 12 (tests/attributes_reference.py, frozen); "new" is
``napari_seisfm.encoders.attributes``. Both run through the same ``extract_features`` (default stride 4,
PCA, int8 store) on synthetic cubes of three or more sizes; "new, N workers" adds chunks in threads.

Projection to 1024^3: extraction is a sum over chunks of ``embed_block`` on the chunk plus its halo, so
the bench times one full production chunk (the embedder's preferred core, 160 samples + 48 of halo a
side: a 256^3 block) for old and new, and sums the chunks of a 1024^3 cube at stride 4 with the time of
a chunk scaled by its block volume (the last chunk along each axis is shorter). The whole-cube sizes
check that model: their measured seconds are printed beside it.

A 2-D line (``--line``, default the Penobscot crossline in ../shared/data when present): new, against the
old embedder on the same line with its native section path (no mirroring, added before issue 12), and
through the 97 mirrored pseudo-lines extraction used before that (timed on the first 60 traces and scaled
by the trace count, as the full line takes minutes).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from attributes_reference import AttributeEmbedder as OldEmbedder  # noqa: E402

from napari_seisfm.cube import Cube, Geometry  # noqa: E402
from napari_seisfm.encoders.attributes import AttributeEmbedder  # noqa: E402
from napari_seisfm.extract import _chunks, estimate_normalisation, extract_features, mirror  # noqa: E402
from napari_seisfm.io import open_cube
from napari_seisfm.store.grid import GridSpec  # noqa: E402
from napari_seisfm.synthetic import make_survey  # noqa: E402

PENOBSCOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "penobscot_xl1155.sgy"


class Old(OldEmbedder):
    parallel_blocks = False  # the old extraction: one chunk after another


def synthetic_cube(n: int) -> Cube:
    s = make_survey((n, n, n), seed=0)
    return Cube.from_array(s.amplitude, Geometry.regular(s.amplitude.shape, source=f"synthetic {n}^3"))


def timed(f):
    """Wall seconds and the result; the CPU seconds of the call go to ``CPU[-1]`` (the machine is shared:
    CPU time of a single-threaded call is what the call costs, wall time also holds the neighbours' load)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = f()
    CPU.append(time.process_time() - c0)
    return time.perf_counter() - t0, out


CPU: list[float] = []


def warm_up():
    """Build both embedders' cached filter matrices and import everything before timing."""
    x = np.random.default_rng(0).standard_normal((100, 100, 100)).astype(np.float32)
    for e in (Old(), AttributeEmbedder()):
        e.embed_block(x, (4, 4, 4))


def whole_cubes(sizes, workers, work: Path) -> list[dict]:
    rows = []
    for n in sizes:
        cube = synthetic_cube(n)
        t_old, _ = timed(lambda: extract_features(cube, work / f"old{n}.zarr", embedder=Old(), overwrite=True))  # noqa: B023
        c_old = CPU[-1]
        t_new, fv = timed(lambda: extract_features(cube, work / f"new{n}.zarr", overwrite=True, workers=1))  # noqa: B023
        c_new = CPU[-1]
        row = {
            "cube": n,
            "chunks": fv.progress()[1],
            "old_s": t_old,
            "new_s": t_new,
            "speedup": t_old / t_new,
            "old_cpu_s": c_old,
            "new_cpu_s": c_new,
            "cpu_speedup": c_old / c_new,
            "new_us_per_sample": t_new / n**3 * 1e6,
            "load_average": os.getloadavg()[0],
        }
        if workers > 1:
            t_par, _ = timed(lambda: extract_features(cube, work / f"par{n}.zarr", overwrite=True, workers=workers))  # noqa: B023
            row.update({f"new_{workers}_workers_s": t_par, f"speedup_{workers}_workers": t_old / t_par})
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def chunk_projection(n_target: int = 1024, stride: int = 4, repeats: int = 1) -> dict:
    """Seconds per production chunk, old and new, and the 1024^3 sum over chunks."""
    emb = AttributeEmbedder()
    grid = GridSpec.for_cube((n_target,) * 3, stride)
    chunk = _chunks(None, emb, grid)
    halo = emb.halo
    full = [c * stride + 2 * h for c, h in zip(chunk, halo)]
    x = np.clip(synthetic_cube(128).read(), -3, 3).astype(np.float32)
    block = x[np.ix_(*(mirror(np.arange(n) - 64, 128) for n in full))]
    block = (block - block.mean()) / block.std()
    t, cpu = {}, {}
    for name, e in (("old", Old()), ("new", emb)):
        runs = []
        for _ in range(repeats):
            runs.append((timed(lambda: e.embed_block(block, (stride,) * 3))[0], CPU[-1]))  # noqa: B023
        t[name], cpu[name] = min(r[0] for r in runs), min(r[1] for r in runs)
    volume = 0.0  # sum over chunks of block volume / full block volume
    per_axis = []
    for g, c, h in zip(grid.shape, chunk, halo):
        sizes = [min(c, g - i) * stride + 2 * h for i in range(0, g, c)]
        per_axis.append(sizes)
    full_volume = float(np.prod(full))
    volume = float(np.prod([sum(s) for s in per_axis])) / full_volume
    return {
        "target_cube": n_target,
        "stride": stride,
        "chunk_grid_points": list(chunk),
        "block_samples": full,
        "chunks": int(np.prod([len(s) for s in per_axis])),
        "full_block_equivalents": volume,
        "old_s_per_chunk": t["old"],
        "new_s_per_chunk": t["new"],
        "speedup": t["old"] / t["new"],
        "old_cpu_s_per_chunk": cpu["old"],
        "new_cpu_s_per_chunk": cpu["new"],
        "cpu_speedup": cpu["old"] / cpu["new"],
        "projected_old_s_1_core": t["old"] * volume,
        "projected_new_s_1_core": t["new"] * volume,
        "projected_old_cpu_s_1_core": cpu["old"] * volume,
        "projected_new_cpu_s_1_core": cpu["new"] * volume,
        "load_average": os.getloadavg()[0],
    }


def line(path: Path, work: Path) -> dict | None:
    if not path.is_file():
        return None
    t_new, fv = timed(lambda: extract_features(path, work / "line_new.zarr", overwrite=True))
    t_old_native, _ = timed(lambda: extract_features(path, work / "line_old.zarr", embedder=Old(), overwrite=True))
    with open_cube(path) as cube:
        shape = cube.shape
        norm = estimate_normalisation(cube)
        flat_axis = 0 if shape[0] == 1 else 1
        sec = np.asarray(cube.read(), np.float32).squeeze(flat_axis)
    sec = np.clip((sec - norm["mean"]) / norm["std"], -3, 3).astype(np.float32)
    old = Old()
    h = old.halo
    traces = 60
    part = sec[
        np.ix_(mirror(np.arange(-h[1], traces + h[1]), sec.shape[0]), mirror(np.arange(-h[2], sec.shape[1] + h[2]), sec.shape[1]))
    ]
    mirrored = np.repeat(part[None], 2 * h[0] + 1, axis=0)
    t_part, _ = timed(lambda: old.embed_block(mirrored, (4, 4, 4)))
    t_old = t_part * sec.shape[0] / traces
    return {
        "line": str(path),
        "shape": list(shape),
        "new_extract_s": t_new,
        "old_embedder_native_section_extract_s": t_old_native,
        "old_mirrored_embed_s_projected": t_old,
        f"old_mirrored_measured_s_on_{traces}_traces": t_part,
        "speedup": t_old / t_new,
        "grid": list(fv.grid.shape),
    }


def fit_power_law(rows) -> dict:
    n = np.array([r["cube"] for r in rows], float)
    out = {}
    for key in ("old_s", "new_s"):
        b, a = np.polyfit(np.log(n), np.log([r[key] for r in rows]), 1)
        out[key.replace("_s", "")] = {"exponent": b, "projected_1024_s": float(np.exp(a) * 1024**b)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="96,128,192")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--line", type=Path, default=PENOBSCOT)
    ap.add_argument("--repeats", type=int, default=2, help="timings of the production chunk (the best is kept)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = {"whole_cubes": whole_cubes(sizes, args.workers, work)}
        report["power_law_fit_of_whole_cubes"] = fit_power_law(report["whole_cubes"])
        report["chunk_projection"] = chunk_projection(repeats=args.repeats)
        report["line_2d"] = line(args.line, work)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
