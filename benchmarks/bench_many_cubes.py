"""One big cube split into chunk tasks on Dask: speed-up over one process, and what stays serial.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_many_cubes.py [--sizes 192,256] [--workers 1,2]

For each cube size (synthetic, default model and stride, as ``seisfm embed``): the time of one process with
one core (``extract_features(workers=1)`` under one BLAS thread: the baseline), then ``embed_many`` on a
``LocalCluster`` of 1, 2, ... single-threaded workers (started before the clock, as a cluster is reused for
a survey, and warmed up on a small cube: imports, the embedder). From Dask's task stream: the *plan* task
(normalisation, content hash: serial per cube), the 8 PCA *sample* tasks (parallel) and the chunk tasks'
summed run times, so the wall time on more workers than this machine has can be projected from its
critical path, ``plan + ceil(8 / w) sample tasks + chunks / w`` (what is left of the measured wall time,
the coordinator and scheduling, is printed too). Stores are
checked byte-identical to the baseline's. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from distributed import Client, LocalCluster, get_task_stream
    from threadpoolctl import threadpool_limits

    from napari_seisfm.extract import extract_features
    from napari_seisfm.io.npy import write_npy
    from napari_seisfm.many_cubes import embed_many
    from napari_seisfm.store.volume import FeatureVolume
    from napari_seisfm.synthetic import make_survey, survey_geometry

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="192,256")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--stride", type=int, default=4)
    args = ap.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    n_workers = [int(v) for v in args.workers.split(",")]
    report = {"stride": args.stride, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        w = make_survey((48,) * 3, seed=1)
        small = write_npy(tmp / "small.npy", w.amplitude, survey_geometry(w))
        for size in sizes:
            s = make_survey((size,) * 3, seed=7)
            cube = write_npy(tmp / f"cube{size}.npy", s.amplitude, survey_geometry(s))
            del s
            ref = tmp / f"ref{size}.zarr"
            t0 = time.perf_counter()
            with threadpool_limits(1):
                fv = extract_features(cube, ref, stride=args.stride, workers=1)
            row = {"cube": size, "chunks": fv.progress()[1], "one_process_s": time.perf_counter() - t0}
            ref_vectors = fv.load()
            for n in n_workers:
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50)
                client = Client(cluster)
                try:
                    client.wait_for_workers(n)
                    warm = tmp / "warm"  # imports and the embedder made once per worker, as in a running survey
                    embed_many([small] * 1, warm, client=client, stride=args.stride)
                    out = tmp / f"dask{size}-{n}"
                    t0 = time.perf_counter()
                    with get_task_stream(client) as ts:
                        embed_many([cube], out, client=client, stride=args.stride)
                    wall = time.perf_counter() - t0
                finally:
                    client.close()
                    cluster.close()
                got = FeatureVolume.open(out / f"cube{size}.zarr").load()
                identical = all(np.array_equal(a, b) for a, b in zip(ref_vectors, got))

                def busy(prefix):
                    spans = [
                        sum(x["stop"] - x["start"] for x in t["startstops"] if x["action"] == "compute")
                        for t in ts.data
                        if str(t["key"]).startswith(prefix)
                    ]
                    return sum(spans), len(spans)

                plan_s, _ = busy("plan-")
                samples_s, n_samples = busy("sample-")
                chunks_s, n_tasks = busy("chunk-")
                row[f"dask_{n}_workers"] = {
                    "wall_s": wall,
                    "speedup_vs_one_process": row["one_process_s"] / wall,
                    "plan_s": plan_s,
                    "sample_tasks": n_samples,
                    "sample_tasks_s": samples_s,
                    "chunk_tasks": n_tasks,
                    "chunk_tasks_s": chunks_s,
                    "coordinator_and_scheduling_s": wall - plan_s - (samples_s + chunks_s) / n,
                    "identical_to_one_process": identical,
                }
                # critical path on w workers: the plan, the samples in waves of w, the chunks spread over w
                projected = {
                    w: plan_s + -(-n_samples // w) * samples_s / max(n_samples, 1) + chunks_s / w for w in (4, 8, 16, 64)
                }
                row[f"dask_{n}_workers"]["projected_wall_s"] = projected
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
