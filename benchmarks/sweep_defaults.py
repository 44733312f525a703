"""How the defaults of the click probe and the linear segmenter were chosen: parameter sweeps on the
*dev* seeds of `seisfm bench` (never the report seeds). Prints one JSON line per run, then a table.

    .venv/bin/python benchmarks/sweep_defaults.py segment      # smoothing x L2 x context (~15 min on 2 cores)
    .venv/bin/python benchmarks/sweep_defaults.py context-penalty   # context scales x their extra L2 (~5 min)
    .venv/bin/python benchmarks/sweep_defaults.py probe        # background size x weight x L2 (~25 min)
    .venv/bin/python benchmarks/sweep_defaults.py readouts --images ../shared/data/real/tgs-salt/tgs_salt_train_3000.npz
                                                               # read-outs x context scales (hours on 2 busy cores)

Results and the choices they led to: docs/quality.md, "How the defaults were chosen".
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from collections import defaultdict

import numpy as np

from napari_seisfm import quality
from napari_seisfm.quality import protocols as P

SEGMENT_GRID = {
    "smooth": (0.0, 1.0, 2.0, 3.0),
    "l2": (1e-3, 1e-2, 1e-1),
    "context": ((), (1.5,), (1.5, 3.0), (2.0, 4.0)),
    "context_penalty": (1.0, 10.0, 100.0),
}
PROBE_GRID = {"background": (500, 2000), "background_weight": (0.3, 1.0, 3.0), "l2": (1e-3, 1e-2, 1e-1)}


def synthetic_tasks(survey, fm, truth):
    packages = P.grid_labels(survey.horizons, fm.grid)
    tasks = {
        "classes": (truth, [int(c) for c in np.unique(truth)], {}),
        "packages": (packages, [int(c) for c in np.unique(packages)], {}),
    }
    for name in survey.label_names()[1:]:
        if (truth == survey.classes[name]).any():
            y = (truth == survey.classes[name]).astype(np.int16)
            tasks[name] = (y, [0, 1], {"line": True, "target": 1} if name == "injectite" else {})
    return tasks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("segment", "context-penalty", "probe", "readouts"))
    p.add_argument("--seeds", default=",".join(map(str, quality.DEV_SEEDS)))
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--model", default="attributes", help="readouts: the embedder (default: %(default)s)")
    p.add_argument("--readouts", default="linear,forest,boosting,mlp,conv", help="readouts: which read-outs")
    p.add_argument("--contexts", default="1.5,3;1.5,3,6,12", help="readouts: context scale sets, ';' between sets")
    p.add_argument("--images", default=None, help="readouts: a labelled image set (the TGS patches) scored too")
    p.add_argument("--no-synthetic", action="store_true", help="readouts: the image set only")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    if set(seeds) & set(quality.REPORT_SEEDS):
        p.error("the sweep chooses defaults: use dev seeds, not the report seeds")
    if a.what == "readouts":
        return sweep_readouts(a, seeds)
    grid = SEGMENT_GRID if a.what == "segment" else PROBE_GRID
    if a.what == "segment":  # smoothing and L2 without context, then context at the chosen smoothing
        combos = [{"smooth": s, "l2": l2, "context": ()} for s, l2 in itertools.product(grid["smooth"], grid["l2"])]
        combos += [{"smooth": 1.0, "l2": l2, "context": c} for c, l2 in itertools.product(grid["context"][1:], grid["l2"][:2])]
    elif a.what == "context-penalty":  # how much dearer the context columns are than a point's own vector
        grid = SEGMENT_GRID
        combos = [
            {"smooth": 1.0, "l2": 1e-3, "context": c, "context_penalty": p_}
            for c, p_ in itertools.product(((1.5,), (1.5, 3.0), (2.0, 4.0)), grid["context_penalty"])
        ]
    else:
        combos = [dict(zip(grid, v)) for v in itertools.product(*grid.values())]
    scores = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            survey, _, fm, truth, _ = quality.prepare(a.size, seed, 2, tmp)
            if a.what != "probe":
                for task, (t, classes, opts) in synthetic_tasks(survey, fm, truth).items():
                    for c in combos:
                        r = P.segmentation_quality(fm, t, classes, method="linear", seed=seed, **opts, **c)
                        key = json.dumps(c)
                        scores[key].append(r["miou"])
                        print(json.dumps({"seed": seed, "task": task, **c, "miou": r["miou"]}), flush=True)
            else:
                for name in survey.label_names()[1:]:
                    target = truth == survey.classes[name]
                    if not target.any():
                        continue
                    for c in combos:
                        r = P.simulated_interpreter(fm, target, decision="probe", grow=True, **c)
                        key = json.dumps(c)
                        scores[key].append(r["noc"])
                        print(
                            json.dumps({"seed": seed, "target": name, **c, "noc": r["noc"], "iou_at_5": r["ious"][4]}), flush=True
                        )
    what = "mean NoC@0.8" if a.what == "probe" else "mean mIoU"
    print(f"\n| parameters | {what} | runs |\n|---|---|---|")
    for key, vals in sorted(scores.items(), key=lambda kv: np.mean(kv[1]), reverse=a.what != "probe"):
        print(f"| `{key}` | {np.mean(vals):.3f} | {len(vals)} |")
    return 0


def sweep_readouts(a, seeds) -> int:
    """Read-outs x context scale sets on the synthetic tasks and an image set: the mean over the synthetic
    tasks, the image set's mIoU and the mean seconds (fit + every grid point) per combination."""
    import time

    from napari_seisfm.quality import suite

    readouts = a.readouts.split(",")
    contexts = [tuple(float(v) for v in c.split(",")) if c.strip() not in ("", "none") else () for c in a.contexts.split(";")]
    rows = []

    def emit(r):
        rows.append(r)
        print(json.dumps(r), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            if not a.no_synthetic:
                survey, _, fm, truth, _ = quality.prepare(a.size, seed, 2, tmp, embedder=suite.make_embedder(a.model))
                for task, (t, classes, opts) in synthetic_tasks(survey, fm, truth).items():
                    for ro in readouts:
                        for ctx in contexts:
                            r = P.segmentation_quality(fm, t, classes, method=ro, seed=seed, context=ctx, **opts)
                            emit(
                                {
                                    "seed": seed,
                                    "task": task,
                                    "readout": ro,
                                    "context": list(ctx),
                                    "miou": r["miou"],
                                    "seconds": r["seconds"],
                                }
                            )
            if a.images:
                task = suite.image_task(a.images, a.model, seed=seed)
                for ro in readouts:
                    for ctx in contexts:
                        t0 = time.perf_counter()
                        r = suite.image_rows(task, a.model, seed, [ro], context=ctx)[0]
                        emit(
                            {
                                "seed": seed,
                                "task": "images",
                                "readout": ro,
                                "context": list(ctx),
                                "miou": r["miou"],
                                "seconds": round(time.perf_counter() - t0, 2),
                            }
                        )
    table = defaultdict(lambda: defaultdict(list))
    for r in rows:
        key = (r["readout"], tuple(r["context"]))
        table[key]["images" if r["task"] == "images" else "synthetic"].append(r["miou"])
        table[key]["seconds"].append(r["seconds"])
    print("\n| read-out | context | synthetic mean | images | seconds, mean |\n|---|---|---|---|---|")
    for (ro, ctx), v in sorted(table.items(), key=lambda kv: -np.mean(kv[1]["synthetic"] or [0])):
        f = lambda x: f"{np.mean(x):.3f}" if x else "-"  # noqa: E731
        print(
            f"| {ro} | {', '.join(f'{c:g}' for c in ctx) or 'none'} | {f(v['synthetic'])} | {f(v['images'])} | "
            f"{np.mean(v['seconds']):.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
