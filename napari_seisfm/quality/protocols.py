"""The quality protocols: metrics, the NCS kNN protocol (and the product's segmentation on the same
labels), the simulated interpreter, and fixed clicks. Each takes a FeatureMatrix and a ground-truth
label grid, so synthetic cubes, image sets and a user's labelled cube all go through the same code.

- **Segmentation** (the NCS paper's protocol): ``n_per_class`` labelled grid points per class drawn at
  random (or every point of one labelled line, the paper's injectite set-up), a segmenter by name
  (``knn`` with k = 5 is the paper's; ``linear`` is the product's default), prediction on every grid
  point, IoU per class and their mean.
- **Simulated interpreter** (interactive-segmentation papers' NoC): one positive click at the centre of
  the largest target body, then a click at the centre of the largest error region (positive on a miss,
  negative on a false alarm) against the mask the product shows (its default threshold, optionally the
  region connected to the positive clicks); IoU after every click and NoC@0.8 (clicks to reach IoU
  0.8, ``max_clicks + 1`` when never).
- **Fixed clicks** (continuity with the earlier tables): n positive and n negative clicks drawn at random
  on the grid inline that holds most of the target; IoU at the default threshold, the oracle's best IoU
  over every threshold and the ROC AUC of the map.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

NOC_IOU = 0.8
MAX_CLICKS = 20


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


# ---------------------------------------------------------------------- ground truth and labels
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


def line_support(truth_grid: np.ndarray, classes, *, target: int | None = None, valid=None):
    """Every grid point of one labelled inline (the paper's single-line supervision): the grid inline
    holding most of ``target`` (or of the rarest class). Returns (points, labels as class + 1, inline)."""
    if target is None:
        counts = {int(c): int((truth_grid == c).sum()) for c in classes}
        target = min(counts, key=counts.get)
    inline = int(np.argmax((truth_grid == target).sum(axis=(1, 2))))
    ok = np.ones(truth_grid.shape, bool) if valid is None else np.asarray(valid, bool).reshape(truth_grid.shape)
    on_line = np.zeros(truth_grid.shape, bool)
    on_line[inline] = True
    pts = np.argwhere(on_line & ok & np.isin(truth_grid, list(classes)))
    return pts, truth_grid[tuple(pts.T)].astype(int) + 1, inline


# ---------------------------------------------------------------------- protocols
def segmentation_quality(
    fm,
    truth_grid: np.ndarray,
    classes,
    *,
    method: str = "knn",
    n_per_class: int = 100,
    seed: int = 0,
    line: bool = False,
    target: int | None = None,
    **options,
) -> dict:
    """Labelled points -> a segmenter by name -> mIoU over ``classes`` on every grid point."""
    from ..search import make_segmenter

    if method == "knn":
        options.setdefault("k", 5)
    rng = np.random.default_rng(seed)
    if line:
        pts, lab, inline = line_support(truth_grid, classes, target=target, valid=fm.valid)
    else:
        pts, lab = sample_support(truth_grid, classes, n_per_class, rng, fm.valid)
        inline = None
    t0 = time.perf_counter()
    seg = make_segmenter(fm, pts, lab, method, **options)
    result = seg.segment()
    dt = time.perf_counter() - t0
    pred = np.where(result.classes > 0, result.classes - 1, -1)
    m, per = mean_iou(pred, truth_grid, classes)
    return {
        "method": method,
        "classes": [int(c) for c in classes],
        "n_support": int(len(pts)),
        "support": "line" if line else f"{n_per_class} per class",
        "line_inline": inline,
        "miou": round(m, 4),
        "iou_per_class": {str(c): round(v, 4) for c, v in per.items()},
        "seconds": round(dt, 3),
        "result": result,
        "support_points": pts,
        "support_labels": lab,
    }


def knn_quality(
    fm, truth_grid: np.ndarray, classes, *, n_per_class: int = 100, k: int = 5, seed: int = 0, weighted: bool = False
) -> dict:
    """The NCS protocol itself (kNN, k = 5): kept under its old name for the demo and the tests."""
    r = segmentation_quality(fm, truth_grid, classes, method="knn", n_per_class=n_per_class, seed=seed, k=k, weighted=weighted)
    r["support"], r["k"] = r.pop("support_points"), k
    return r


def product_mask(search, score_map: np.ndarray, grow: bool) -> np.ndarray:
    """The mask the product shows for a map: the default threshold, then (``grow``) the regions the
    positive clicks sit in."""
    from ..search import threshold_mask

    return threshold_mask(score_map, search.default_threshold(score_map), search.positives, connected=grow)


def _centre_of_largest(mask: np.ndarray):
    """Grid index deepest inside the largest connected region of ``mask`` (None when empty)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return None, 0
    sizes = np.bincount(labels.ravel())[1:]
    biggest = labels == (int(np.argmax(sizes)) + 1)
    depth = ndimage.distance_transform_edt(np.pad(biggest, 1))[tuple(slice(1, -1) for _ in mask.shape)]
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(depth)), mask.shape)), int(sizes.max())


def simulated_interpreter(
    fm,
    truth: np.ndarray,
    *,
    decision: str = "probe",
    grow: bool = True,
    max_clicks: int = MAX_CLICKS,
    trace: bool = False,
    **options,
) -> dict:
    """Clicks against the product's mask until IoU reaches 0.8 or ``max_clicks`` (see the module doc).
    ``trace``: also return the clicks in order, ``"clicks": [(i, j, k, +1 positive / -1 negative), ...]``."""
    from ..search import make_search

    truth = np.asarray(truth, bool) & fm.valid.reshape(fm.shape)
    search = make_search(fm, decision, **options)
    first, _ = _centre_of_largest(truth)
    if first is None:
        raise ValueError("the target is empty on the feature grid")
    search.add(first)
    clicks = [(*first, 1)]
    ious, seconds = [], 0.0
    for n in range(1, max_clicks + 1):
        t0 = time.perf_counter()
        score = search.score_map()
        mask = product_mask(search, score, grow)
        seconds += time.perf_counter() - t0
        ious.append(round(iou(mask, truth), 4))
        if ious[-1] >= 1.0 or n == max_clicks:
            break
        miss, miss_size = _centre_of_largest(truth & ~mask)
        alarm, alarm_size = _centre_of_largest(mask & ~truth)
        if miss_size >= alarm_size:
            search.add(miss)
            clicks.append((*miss, 1))
        else:
            search.add(alarm, negative=True)
            clicks.append((*alarm, -1))
    ious += [ious[-1]] * (max_clicks - len(ious))  # a perfect mask stays perfect
    noc = next((i + 1 for i, v in enumerate(ious) if v >= NOC_IOU), max_clicks + 1)
    out = {
        "decision": decision,
        "grow": grow,
        "iou_at": {str(c): ious[c - 1] for c in (1, 3, 5, 10) if c <= max_clicks},
        "noc": noc,
        "ious": ious,
        "ms_per_click": round(1e3 * seconds / max(len(search.positives) + len(search.negatives), 1), 2),
        "positives": len(search.positives),
        "negatives": len(search.negatives),
    }
    if trace:
        out["clicks"] = clicks
    return out


def click_quality(
    fm,
    truth_grid: np.ndarray,
    class_id: int,
    *,
    n_pos: int = 3,
    n_neg: int = 3,
    seed: int = 0,
    inline: int | None = None,
    decision: str = "centroid",
    grow: bool = False,
) -> dict:
    """Fixed clicks on one inline -> map -> IoU (product mask and oracle) and AUC."""
    from ..search import make_search

    rng = np.random.default_rng(seed)
    inline, pos, neg = pick_clicks(truth_grid, class_id, n_pos, n_neg, rng, inline)
    search = make_search(fm, decision)
    search.set_clicks(pos, neg)
    t0 = time.perf_counter()
    score = search.score_map()
    t_map = time.perf_counter() - t0
    truth = truth_grid == class_id
    t = search.default_threshold(score)
    mask = product_mask(search, score, grow)
    return {
        "class": int(class_id),
        "decision": decision,
        "grow": grow,
        "n_pos": len(pos),
        "n_neg": len(neg),
        "grid_inline": inline,
        "threshold": round(t, 4),
        "selected_fraction": round(float(np.mean(mask)), 5),
        "iou": round(iou(mask, truth), 4),
        "iou_best": round(best_iou(score, truth), 4),
        "auc": round(auc(score, truth), 4),
        "map_ms": round(1e3 * t_map, 2),
        "positives": pos.tolist(),
        "negatives": neg.tolist(),
    }
