"""Interpretation quality on synthetic cubes with ground truth: click-to-map IoU/AUC and kNN mIoU.

Protocol (the NCS-models evaluation, adapted to clicks; docs/quality.md has the table):

- Ground truth on the feature grid: the synthetic label volume sampled at every grid point's cube index.
- Clicks: n positive grid points drawn from the target class on the one grid inline that holds most
  of it, and as many negatives from background (class 0) on the same inline.
- Similarity map from :class:`~napari_seisfm.search.CentroidSearch`; the mask is ``score >= t`` with
  the default rule :func:`~napari_seisfm.interpretation.auto_threshold` (lowest score among the
  positive clicks; needs no ground truth). ``iou_best`` is the IoU at the best of all thresholds
  (:func:`best_iou`: an oracle, an upper bound only) and ``auc`` is the ROC AUC of the scores for the class.
- kNN: 100 grid points per class drawn at random from the ground truth (all of them when a class has
  fewer), k = 5, mIoU over the classes on every grid point; per-feature binary tasks (class vs the rest)
  and the multi-class task.

``python -m napari_seisfm.bench`` (or ``benchmarks/quality.py``) prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from .interpretation import auto_threshold

TARGETS = ("flat_spot", "salt", "injectite", "fault", "boulder", "channel")


# ---------------------------------------------------------------------- metrics
def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else float("nan")


def auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC by the rank formula (Mann-Whitney U / (n+ n-)); ties get mean ranks; NaN scores dropped."""
    from scipy.stats import rankdata

    s = np.asarray(scores, float).ravel()
    y = np.asarray(truth, bool).ravel()
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_iou(scores: np.ndarray, truth: np.ndarray) -> float:
    """The best IoU of ``scores >= t`` over every threshold t (an oracle: it uses the ground truth).

    One sort: taking the k best-scoring points, IoU(k) = tp(k) / (k + P - tp(k)); ties in the scores
    are kept together, as a threshold cannot split them.
    """
    s, t = np.asarray(scores, float).ravel(), np.asarray(truth, bool).ravel()
    ok = np.isfinite(s)
    s, t = s[ok], t[ok]
    if not t.any():
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(t[order])
    last_of_tie = np.append(s[order][1:] != s[order][:-1], True)
    k = np.arange(1, len(s) + 1)
    return float(np.max((tp / (k + t.sum() - tp))[last_of_tie]))


def mean_iou(pred: np.ndarray, truth: np.ndarray, classes) -> tuple[float, dict]:
    per = {int(c): iou(pred == c, truth == c) for c in classes}
    return float(np.nanmean(list(per.values()))), per


# ---------------------------------------------------------------------- ground truth and clicks
def grid_labels(labels: np.ndarray, grid) -> np.ndarray:
    """The label volume sampled at the feature grid's points."""
    idx = np.ix_(*(o + s * np.arange(n) for o, s, n in zip(grid.origin, grid.stride, grid.shape)))
    return np.asarray(labels)[idx]


def pick_clicks(truth_grid: np.ndarray, class_id: int, n_pos: int, n_neg: int, rng, inline: int | None = None):
    """(inline, positives (n, 3), negatives (m, 3)) as grid indices on one grid inline."""
    target = truth_grid == class_id
    if inline is None:
        inline = int(np.argmax(target.sum(axis=(1, 2))))
    pos = np.argwhere(target[inline])
    bg = np.argwhere(truth_grid[inline] == 0)
    if len(pos) == 0:
        raise ValueError(f"class {class_id} is not on grid inline {inline}")
    pos = pos[rng.choice(len(pos), min(n_pos, len(pos)), replace=False)]
    bg = bg[rng.choice(len(bg), min(n_neg, len(bg)), replace=False)] if n_neg else bg[:0]
    add = lambda p: np.column_stack([np.full(len(p), inline), p]).astype(int)  # noqa: E731
    return inline, add(pos), add(bg)


def sample_support(truth_grid: np.ndarray, classes, n_per_class: int, rng, valid=None):
    """``n_per_class`` random grid points of each class (all when fewer): (points (M, 3), labels (M,)).

    Labels are ``class + 1`` so that class 0 (background) is a class and not "unlabelled".
    """
    pts, lab = [], []
    ok = np.ones(truth_grid.shape, bool) if valid is None else np.asarray(valid, bool).reshape(truth_grid.shape)
    for c in classes:
        where = np.argwhere((truth_grid == c) & ok)
        take = where[rng.choice(len(where), min(n_per_class, len(where)), replace=False)]
        pts.append(take)
        lab.append(np.full(len(take), int(c) + 1))
    return np.concatenate(pts), np.concatenate(lab)


# ---------------------------------------------------------------------- experiments
def click_quality(fm, truth_grid: np.ndarray, class_id: int, *, n_pos: int = 3, n_neg: int = 3, seed: int = 0,
                  inline: int | None = None) -> dict:
    """Clicks on one inline -> similarity map -> IoU (default threshold and oracle) and AUC."""
    from .search import CentroidSearch

    rng = np.random.default_rng(seed)
    inline, pos, neg = pick_clicks(truth_grid, class_id, n_pos, n_neg, rng, inline)
    search = CentroidSearch(fm)
    search.set_clicks(pos, neg)
    t0 = time.perf_counter()
    score = search.score_map()
    t_map = time.perf_counter() - t0
    truth = truth_grid == class_id
    t = auto_threshold(score, pos)
    best = best_iou(score, truth)
    return {
        "class": int(class_id), "n_pos": len(pos), "n_neg": len(neg), "grid_inline": inline,
        "threshold": round(t, 4), "selected_fraction": round(float(np.mean(score >= t)), 5),
        "iou": round(iou(score >= t, truth), 4), "iou_best": round(best, 4), "auc": round(auc(score, truth), 4),
        "map_ms": round(1e3 * t_map, 2), "positives": pos.tolist(), "negatives": neg.tolist(),
    }


def knn_quality(fm, truth_grid: np.ndarray, classes, *, n_per_class: int = 100, k: int = 5, seed: int = 0,
                weighted: bool = False) -> dict:
    """kNN from ``n_per_class`` points per class -> mIoU over ``classes`` on the whole grid."""
    from .search import KnnSegmenter

    rng = np.random.default_rng(seed)
    pts, lab = sample_support(truth_grid, classes, n_per_class, rng, fm.valid)
    t0 = time.perf_counter()
    seg = KnnSegmenter(fm, pts, lab, k=k, weighted=weighted)
    result = seg.segment()
    dt = time.perf_counter() - t0
    pred = result.classes - 1
    m, per = mean_iou(pred, truth_grid, classes)
    return {"classes": [int(c) for c in classes], "n_support": int(len(pts)), "k": k, "miou": round(m, 4),
            "iou_per_class": {str(c): round(v, 4) for c, v in per.items()}, "seconds": round(dt, 3),
            "support": pts, "support_labels": lab, "result": result}


def prepare(size: int, seed: int, stride: int, workdir, model: str | None = None, noise: float = 0.1):
    """Synthetic survey + its feature store (default embedder) + FeatureMatrix + ground truth on the grid."""
    from ._sample_data import survey_geometry
    from .cube import Cube
    from .extract import extract_features
    from .search import FeatureMatrix
    from .synthetic import make_survey

    times = {}
    t0 = time.perf_counter()
    survey = make_survey((size, size, size), seed=seed, noise=noise)
    times["synthetic_s"] = time.perf_counter() - t0
    cube = Cube.from_array(survey.amplitude, survey_geometry(survey))
    t0 = time.perf_counter()
    fv = extract_features(cube, Path(workdir) / f"features_{size}_{seed}_s{stride}.zarr", model=model, stride=stride, overwrite=True)
    times["extract_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fm = FeatureMatrix.from_volume(fv, cube=cube)
    times["load_s"] = time.perf_counter() - t0
    times["model"] = fv.model
    return survey, cube, fm, grid_labels(survey.labels, fm.grid), times


def run(sizes=(128,), seeds=(0,), stride: int = 2, clicks=(1, 3, 5), n_per_class: int = 100, k: int = 5,
        model: str | None = None) -> dict:
    rows, knn_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for seed in seeds:
                survey, cube, fm, truth, times = prepare(size, seed, stride, tmp, model)
                present = [c for c in np.unique(truth)]
                for name in TARGETS:
                    cid = survey.classes[name]
                    if not (truth == cid).any():
                        continue
                    for n in clicks:
                        r = click_quality(fm, truth, cid, n_pos=n, n_neg=n, seed=seed)
                        rows.append({"size": size, "seed": seed, "target": name, **{k_: v for k_, v in r.items() if k_ not in ("positives", "negatives")}})
                    y = (truth == cid).astype(int)
                    kq = knn_quality(fm, y, (0, 1), n_per_class=n_per_class, k=k, seed=seed)
                    knn_rows.append({"size": size, "seed": seed, "task": f"{name} vs rest", "miou": kq["miou"],
                                     "iou_target": kq["iou_per_class"]["1"], "seconds": kq["seconds"]})
                kq = knn_quality(fm, truth, present, n_per_class=n_per_class, k=k, seed=seed)
                knn_rows.append({"size": size, "seed": seed, "task": "all classes", "miou": kq["miou"],
                                 "iou_per_class": {survey.label_names()[int(c)]: v for c, v in kq["iou_per_class"].items()},
                                 "seconds": kq["seconds"]})
                model_id = times["model"]
    return {"embedder": model_id, "stride": stride, "k": k, "n_per_class": n_per_class,
            "sizes": list(sizes), "seeds": list(seeds), "clicks": rows, "knn": knn_rows}


def markdown(result: dict) -> str:
    """Tables of the means over sizes and seeds (click-to-map per target and click count; kNN per task)."""
    from collections import defaultdict

    rows = defaultdict(list)
    for r in result["clicks"]:
        rows[(r["target"], r["n_pos"])].append(r)
    lines = ["| target | clicks (+/-) | runs | IoU (auto threshold) | IoU best (oracle) | AUC |", "|---|---|---|---|---|---|"]
    order = {t: i for i, t in enumerate(TARGETS)}
    for (target, n), rs in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        mean = lambda key: np.mean([r[key] for r in rs])  # noqa: E731
        lines.append(f"| {target} | {n}/{n} | {len(rs)} | {mean('iou'):.3f} | {mean('iou_best'):.3f} | {mean('auc'):.3f} |")
    knn = defaultdict(list)
    for r in result["knn"]:
        knn[r["task"]].append(r)
    lines += ["", "| kNN task | runs | mIoU | IoU of the target |", "|---|---|---|---|"]
    for task, rs in knn.items():
        target = f"{np.mean([r['iou_target'] for r in rs]):.3f}" if "iou_target" in rs[0] else "-"
        lines.append(f"| {task} | {len(rs)} | {np.mean([r['miou'] for r in rs]):.3f} | {target} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="click-to-map IoU/AUC and kNN mIoU on synthetic cubes (JSON)")
    p.add_argument("--sizes", default="128", help="cube sizes, comma separated (default 128)")
    p.add_argument("--seeds", default="0", help="survey seeds, comma separated (default 0)")
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--clicks", default="1,3,5", help="numbers of positive (and as many negative) clicks")
    p.add_argument("--model", default=None, help="embedder id (default: the registry default)")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--markdown", action="store_true", help="print the mean tables (markdown) instead of JSON")
    a = p.parse_args(argv)
    ints = lambda s: tuple(int(v) for v in s.split(","))  # noqa: E731
    out = run(ints(a.sizes), ints(a.seeds), a.stride, ints(a.clicks), a.per_class, a.k, a.model)
    print(markdown(out) if a.markdown else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
