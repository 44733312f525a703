"""Memory and speed of `seisfm features import` on a big float16 array (default 2 GB, 768 channels).

Writes a cube (sparse .npy, stride-4 grid) and a channel-last float16 feature array of ``--gb`` GB to a
scratch folder, then runs, each in a fresh process:

- **baseline**: read the whole array in the same slabs and convert it to float32 (``np.load`` mmap, one
  pass; what any chunked reader has to do at least);
- **import**: :func:`napari_seisfm.store.interchange.import_features` (PCA 768 -> 64 fitted on a sample,
  int8 store), under an enforced cap on private memory (``RLIMIT_DATA``, ``--cap-mb``; the read-only
  memory-mapped source is file-backed and does not count, as it does not for the page cache);
- **import_before** (``--before REV``, default the commit before issue 24): the same call on the package as it
  was then (extracted from git into the scratch folder), to compare the PCA and encoding in the same run;
- **cli_start**: ``seisfm features import --help`` (the command's start-up: interpreter, parser, imports), now
  and before.

``--reps`` runs alternate the three (medians); ``--load N`` repeats them beside N busy processes.

Peak memory per process: ``tracemalloc`` (every numpy and Python allocation), the sampled peak of
``RssAnon`` (private resident memory, /proc/self/status every 10 ms) and ``ru_maxrss`` (which also counts
the mapped file pages the kernel can drop at any time). Prints JSON: throughputs and their ratio to the
baseline, peaks against the cap. ``--quick``: 0.25 GB.

    .venv/bin/python benchmarks/bench_features_import.py [--gb 1] [--cap-mb 400] [--reps 3] [--load 2]

Every child runs with one BLAS/OpenMP thread, the product's thread policy (napari_seisfm/threads.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STRIDE = 4
REPO = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, gb: float, dim: int) -> tuple[Path, Path, tuple]:

    points = gb * 1e9 / (dim * 2)
    gt = 80
    side = int(round((points / gt) ** 0.5))
    grid = (side, side, gt)
    cube_path, array_path = folder / "cube.npy", folder / "features.npy"
    cube = np.lib.format.open_memmap(cube_path, mode="w+", dtype=np.float32, shape=tuple(STRIDE * g for g in grid))
    cube[:, :, ::7] = 1.0  # a few samples per trace (sparse file otherwise): the content hash reads traces
    cube.flush()
    del cube
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((16, dim)).astype(np.float32)
    out = np.lib.format.open_memmap(array_path, mode="w+", dtype=np.float16, shape=(*grid, dim))
    for i in range(grid[0]):  # a 16-d signal plus noise, one inline at a time
        signal = rng.standard_normal((grid[1], grid[2], 16)).astype(np.float32) @ basis
        out[i] = signal + 0.1 * rng.standard_normal(signal.shape, dtype=np.float32)
    out.flush()
    del out
    return cube_path, array_path, grid


def child(job: dict) -> None:
    """One measured run in this fresh process; prints JSON."""
    import resource

    if job.get("cap_mb"):
        cap = int(job["cap_mb"]) * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    import threading
    import tracemalloc

    import numpy as np

    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            stop.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if job["kind"] == "import":
        from napari_seisfm.store.interchange import import_features  # imported before the clock starts

    tracemalloc.start()
    t0 = time.perf_counter()
    if job["kind"] == "baseline":
        a = np.load(job["array"], mmap_mode="r")
        total = 0.0
        step = 16
        for i in range(0, a.shape[0], step):
            for j in range(0, a.shape[1], step):
                total += float(np.asarray(a[i : i + step, j : j + step], np.float32).sum(dtype=np.float64))
        result = {"checksum": total}
    else:
        fv = import_features(job["array"], job["cube"], job["out"], pca=64, dtype="i8", model_name="bench")
        result = {"store_dim": fv.dim, "grid": list(fv.grid.shape), "stride": list(fv.grid.stride), "complete": fv.complete}
    wall = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    stop.set()
    sampler.join()
    print(
        json.dumps(
            {
                **result,
                "wall_s": wall,
                "tracemalloc_peak_mb": traced / 2**20,
                "rss_anon_peak_mb": peak[0] / 2**20,
                "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_child(job: dict, src: str | None = None) -> dict:
    # glibc reserves 64 MB of address space per thread arena (zarr's codec threads), which RLIMIT_DATA counts
    # although it is never touched: two arenas keep the cap about memory actually used
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    if src:
        env["PYTHONPATH"] = src
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return {"failed": True, "returncode": p.returncode, "stderr": p.stderr.strip().splitlines()[-3:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def cli_start(src: str) -> float:
    t0 = time.perf_counter()  # cwd: the code's own folder (``python -m`` puts the cwd first on sys.path)
    subprocess.run(
        [sys.executable, "-m", "napari_seisfm.cli", "features", "import", "--help"],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONPATH": src},
        cwd=src,
    )
    return time.perf_counter() - t0


def extract(rev: str, dest: Path) -> str:
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return str(dest)


def phase(args, cube, array, folder: Path, before_src: str | None) -> dict:
    runs: dict = {"baseline": [], "import": [], "import_before": [], "cli_start": [], "cli_start_before": []}
    for _r in range(args.reps):
        runs["baseline"].append(run_child({"kind": "baseline", "array": str(array)}))
        for key, src in (("import", str(REPO)), ("import_before", before_src)):
            if src is None:
                continue
            out = folder / f"features_{key}.zarr"
            shutil.rmtree(out, ignore_errors=True)
            runs[key].append(
                run_child({"kind": "import", "array": str(array), "cube": str(cube), "out": str(out), "cap_mb": args.cap_mb}, src)
            )
            shutil.rmtree(out, ignore_errors=True)
        runs["cli_start"].append({"wall_s": cli_start(str(REPO))})
        if before_src:
            runs["cli_start_before"].append({"wall_s": cli_start(before_src)})

    def med(key, field="wall_s"):
        vals = [x[field] for x in runs[key] if field in x]
        return float(np.median(vals)) if vals else None

    res = {
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "failed": [x for v in runs.values() for x in v if x.get("failed")],
    }
    for key in runs:
        if runs[key]:
            res[f"{key}_s"] = round(med(key), 3) if med(key) is not None else None
    if res.get("import_s") and res.get("baseline_s"):
        res["import_over_read"] = round(res["import_s"] / res["baseline_s"], 2)
        res["import_rss_anon_peak_mb"] = round(med("import", "rss_anon_peak_mb"), 1)
    if res.get("import_before_s") and res.get("baseline_s"):
        res["import_before_over_read"] = round(res["import_before_s"] / res["baseline_s"], 2)
        res["before_over_now"] = round(res["import_before_s"] / res["import_s"], 2)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0, help="size of the float16 array (default 1)")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--cap-mb", type=int, default=400, help="private memory cap of the import process (RLIMIT_DATA)")
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temporary one, removed at the end)")
    ap.add_argument("--quick", action="store_true", help="0.25 GB")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--load", type=int, default=0, help="also run beside N busy processes")
    ap.add_argument("--before", default="88a15d6", help="git revision for import_before ('' to skip)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    gb = 0.25 if args.quick else args.gb
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench_features_import_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        cube, array, grid = make_inputs(folder, gb, args.dim)
        made = time.perf_counter() - t0
        size = array.stat().st_size
        before_src = extract(args.before, folder / "before_src") if args.before else None
        report = {
            "array": {
                "shape": [*grid, args.dim],
                "dtype": "float16",
                "bytes": size,
                "gb": round(size / 1e9, 3),
                "made_s": round(made, 1),
            },
            "cap_mb": args.cap_mb,
            "before": args.before,
            "reps": args.reps,
            "quiet": {"loadavg_start": [round(x, 2) for x in os.getloadavg()], **phase(args, cube, array, folder, before_src)},
        }
        if args.load:
            procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.load)]
            try:
                time.sleep(1.0)
                report["loaded"] = {
                    "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                    "busy_processes": args.load,
                    **phase(args, cube, array, folder, before_src),
                }
            finally:
                for pr in procs:
                    pr.kill()
                    pr.wait()
            report["loaded_over_quiet"] = {
                k: round(report["loaded"][k] / report["quiet"][k], 2)
                for k in ("baseline_s", "import_s", "import_before_s")
                if report["quiet"].get(k)
            }
        report["goal_import_over_read"] = 3.0
        print(json.dumps(report, indent=1))
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
