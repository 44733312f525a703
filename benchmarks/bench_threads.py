"""Every command quiet and beside two busy processes, with the thread policy (napari_seisfm/threads.py) and
without it, in the same run (issue 24).

    .venv/bin/python benchmarks/bench_threads.py                    # all commands, 3 reps
    .venv/bin/python benchmarks/bench_threads.py --only embed,segment --reps 2

A laptop is never idle. Each command runs as a user starts it, in a fresh process with the environment's
thread settings (``OMP_NUM_THREADS`` and friends removed, so the libraries choose their defaults), from two
copies of the code: ``before``, the package as it was before the policy (``--before``, a git revision
extracted into a scratch folder), and ``now``, this checkout. Phases: ``quiet`` (only what else runs on the
machine: the load average is recorded) and ``loaded`` (two ``python -c 'while 1: pass'`` processes started
here, ended afterwards). Within a phase the two codes alternate rep by rep; medians of wall seconds.

Commands (inputs made once, by ``now``, before timing; sizes as in the issue where it gave one):

- ``embed``: ``seisfm embed`` of a 128^3 synthetic cube (the default attribute model, stride 4);
- ``segment``: ``seisfm segment`` of that store, 100 labelled grid points per class (the default method), and
  ``segment-knn`` (``--method knn``);
- ``pretrain``: ``seisfm pretrain`` of the test-size ViT on the cube, 15 steps;
- ``wavediff-simulate``: ``seisfm wavediff simulate`` of 16 tiny pairs (the forward solver);
- ``wavediff-train``: ``seisfm wavediff train --size micro``, 30 + 30 steps;
- ``import``: ``seisfm features import`` of a 32^3 x 768 float16 array (48 MB) onto the cube.

Reported per command: seconds (quiet and loaded, before and now), ``loaded_over_quiet`` for each code (goal
<= 2.5 with the policy: two busy processes on two cores leave about half the machine, so about 2 is ideal),
and ``before_over_now`` per phase. Prints JSON.
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

REPO = Path(__file__).resolve().parents[1]
BEFORE = "88a15d6"  # the last commit before issue 24's thread policy
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def extract(rev: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def env_for(src: Path, work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    env.update(PYTHONPATH=str(src), SEISFM_MODELS=str(work / "models"), HOME=str(work / "home"))
    return env


def seisfm(src: Path, work: Path, args: list[str], timeout: float = 900) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "napari_seisfm.cli", *args],
        env=env_for(src, work),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"seisfm {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-800:]}")
    return dt


def prepare(now: Path, work: Path) -> dict:
    """The inputs, made once with the current code."""
    seisfm(now, work, ["synth", str(work / "cube.npy"), "--size", "128"])
    seisfm(now, work, ["embed", str(work / "cube.npy"), "--out", str(work / "store.zarr")])
    labels = np.load(work / "cube_labels.npy")
    grid = labels[::4, ::4, ::4]  # stride 4 from index 0: the store's grid
    rng = np.random.default_rng(0)
    rows = []
    for c in np.unique(grid):
        pts = np.argwhere(grid == c)
        for p in pts[rng.choice(len(pts), min(100, len(pts)), replace=False)]:
            rows.append(f"{p[0]},{p[1]},{p[2]},{int(c) + 1}")
    (work / "points.csv").write_text("\n".join(rows) + "\n")
    rng = np.random.default_rng(1)
    feats = np.lib.format.open_memmap(work / "features.npy", mode="w+", dtype=np.float16, shape=(32, 32, 32, 768))
    basis = rng.standard_normal((16, 768)).astype(np.float32)
    for i in range(32):
        feats[i] = rng.standard_normal((32, 32, 16)).astype(np.float32) @ basis + 0.1 * rng.standard_normal(
            (32, 32, 768), dtype=np.float32
        )
    feats.flush()
    del feats
    return {"cube": "128^3 synthetic (.npy)", "store": "stride 4, 32^3 grid", "points": len(rows)}


def commands(work: Path, tag: str) -> dict:
    """Command lines; ``tag`` makes each run's outputs fresh."""
    return {
        "embed": ["embed", "cube.npy", "--out", f"embed_{tag}.zarr"],
        "segment": ["segment", "store.zarr", "--labels", "points.csv", "--coords", "grid", "--out", f"seg_{tag}.npy"],
        "segment-knn": [
            "segment",
            "store.zarr",
            "--labels",
            "points.csv",
            "--coords",
            "grid",
            "--method",
            "knn",
            "--out",
            f"knn_{tag}.npy",
        ],
        "pretrain": ["pretrain", "cube.npy", "--out", f"pre_{tag}", "--steps", "15", "--no-install"],
        "wavediff-simulate": ["wavediff", "simulate", "--n", "16", "--out", f"sim_{tag}"],
        "wavediff-train": [
            "wavediff",
            "train",
            "--data",
            "pairs",
            "--out",
            f"wd_{tag}",
            "--size",
            "micro",
            "--setup",
            "micro",
            "--stage1-steps",
            "30",
            "--stage2-steps",
            "30",
        ],
        "import": ["features", "import", "features.npy", "--cube", "cube.npy", "--out", f"imp_{tag}.zarr"],
    }


def phase(codes: dict, work: Path, names: list[str], reps: int, label: str) -> dict:
    t = {name: {c: [] for c in codes} for name in names}
    start = loadavg()
    for r in range(reps):
        for name in names:
            order = list(codes) if r % 2 == 0 else list(codes)[::-1]
            for code in order:
                tag = f"{label}_{code}_{r}"
                t[name][code].append(seisfm(codes[code], work, commands(work, tag)[name]))
                for p in work.glob(f"*_{tag}*"):  # outputs are not kept
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
            print(
                f"{label} rep {r} {name}: " + ", ".join(f"{c} {t[name][c][-1]:.1f} s" for c in codes), file=sys.stderr, flush=True
            )
    return {
        "loadavg_start": start,
        "loadavg_end": loadavg(),
        "seconds": {n: {c: round(float(np.median(v)), 2) for c, v in d.items()} for n, d in t.items()},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--before", default=BEFORE, help="git revision of the code without the policy (default %(default)s)")
    p.add_argument("--only", default=None, help="comma-separated commands (default: all)")
    p.add_argument("--busy", type=int, default=2, help="busy processes of the loaded phase")
    p.add_argument("--dir", default=None, help="scratch folder (default: a temporary one, removed at the end)")
    a = p.parse_args(argv)
    work = Path(a.dir or tempfile.mkdtemp(prefix="bench_threads_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        before = extract(a.before, work / "before_src")
        codes = {"before": before, "now": REPO}
        info = prepare(REPO, work)
        seisfm(REPO, work, ["wavediff", "simulate", "--setup", "micro", "--n", "64", "--out", "pairs"])
        names = list(commands(work, "x")) if a.only is None else a.only.split(",")
        out = {
            "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0))},
            "before": a.before,
            "inputs": info,
            "reps": a.reps,
            "quiet": phase(codes, work, names, a.reps, "quiet"),
        }
        procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(a.busy)]
        try:
            time.sleep(1.0)
            out["loaded"] = phase(codes, work, names, a.reps, "loaded")
        finally:
            for pr in procs:
                pr.kill()
                pr.wait()
        out["loaded"]["busy_processes"] = a.busy
        q, ld = out["quiet"]["seconds"], out["loaded"]["seconds"]
        out["loaded_over_quiet"] = {n: {c: round(ld[n][c] / q[n][c], 2) for c in codes} for n in names}
        out["before_over_now"] = {
            n: {"quiet": round(q[n]["before"] / q[n]["now"], 2), "loaded": round(ld[n]["before"] / ld[n]["now"], 2)}
            for n in names
        }
        out["goal_loaded_over_quiet"] = 2.5
        json.dump(out, sys.stdout, indent=1)
        print()
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
