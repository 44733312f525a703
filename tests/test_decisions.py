"""The learned decisions: logistic fits, the click probe, the linear segmenter, connected regions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seisfm.errors import SeisfmCancelled, SeisfmError
from napari_seisfm.quality import auc, iou
from napari_seisfm.search import (
    CentroidSearch,
    FeatureMatrix,
    KnnSegmenter,
    LinearSegmenter,
    ProbeSearch,
    connected_to,
    make_search,
    make_segmenter,
    threshold_mask,
)
from napari_seisfm.search.linear import Standardiser, fit_linear_model, fit_logistic

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

GRID = (12, 10, 16)


def _objective_gradient(z, y, C, w, l2, W, b):
    logits = z @ W + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(C)[y]) * (w / w.sum())[:, None]
    return z.T @ g + l2 * W, g.sum(0)


def test_multinomial_fit_reaches_the_optimum_and_separates():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    z = rng.normal(size=(300, 6))
    z[np.arange(300), y] += 3.0
    W, b = fit_logistic(z, y, 4, l2=1e-2)
    counts = np.bincount(y)
    gW, gb = _objective_gradient(z, y, 4, 1.0 / counts[y], 1e-2, W, b)
    assert np.abs(gW).max() < 1e-4 and np.abs(gb).max() < 1e-4  # class-balanced weights by default
    assert np.mean(np.argmax(z @ W + b, 1) == y) > 0.95


def test_binary_fit_is_newton_on_the_weighted_objective():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 5))
    y = (z[:, 0] + 0.5 * z[:, 1] + 0.3 * rng.normal(size=500) > 0.8).astype(int)
    w = rng.uniform(0.5, 2.0, 500)
    W, b = fit_logistic(z, y, 2, weights=w, l2=1e-3)
    theta, c = W[:, 1] - W[:, 0], b[1] - b[0]
    p = 1 / (1 + np.exp(-(z @ theta + c)))
    w = w / w.sum()
    assert np.abs(z.T @ (w * (p - y)) + 1e-3 * theta).max() < 1e-8
    assert abs(np.sum(w * (p - y))) < 1e-8


def test_linear_model_folds_the_standardisation_into_the_weights():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(np.prod(GRID), 8)) * np.array([5, 1, 0.1, 1, 1, 1, 1, 1])
    fm = FeatureMatrix.from_array(v.astype(np.float32), GRID)
    rows = rng.choice(fm.grid.size, 40, replace=False)
    y = rng.integers(0, 3, 40)
    model = fit_linear_model(fm, rows, y, 3, l2=1e-2)
    st = Standardiser.of(fm)
    W, b = fit_logistic(st(fm.decode(fm.vectors[rows])), y, 3, l2=1e-2)
    direct = st(fm.decode(fm.vectors)) @ W + b
    np.testing.assert_allclose(model.logits(fm, fm.vectors), direct, atol=1e-3)
    assert Standardiser.of(fm) is st  # computed once per matrix


# ---------------------------------------------------------------------- click probe
def _two_bodies(dtype="int8", seed=3):
    """A target body (class direction e0) in noise; background points along other directions."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(GRID, bool)
    truth[3:7, 2:6, 4:10] = True
    v = rng.normal(size=(*GRID, 6)).astype(np.float32)
    v[..., 0] += np.where(truth, 4.0, -1.0)
    return FeatureMatrix.from_array(v, GRID, dtype=dtype), truth


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_probe_maps_the_target_from_a_few_clicks(dtype):
    fm, truth = _two_bodies(dtype)
    s = ProbeSearch(fm, context=())  # the plain probe: one dot product (the context is tested below)
    clicks = [(5, 4, 6), (3, 2, 4), (6, 5, 9)]
    for c in clicks:
        s.add(c)
    p = s.score_map()
    assert np.nanmin(p) >= 0 and np.nanmax(p) <= 1 and s.default_threshold() == 0.5
    assert p[5, 4, 6] > 0.5
    mask = p >= s.default_threshold()
    centroid = CentroidSearch(fm)
    for c in clicks:
        centroid.add(c)
    cmap = centroid.score_map()
    assert auc(p, truth) > 0.99
    assert iou(mask, truth) > 0.65 and iou(mask, truth) > iou(cmap >= centroid.default_threshold(), truth)
    # the map is sigmoid(decode(x) . q + c) within the kernel's query rounding
    rows = [fm.flat(c) for c in clicks] + list(s.background)
    y = np.r_[np.ones(3, int), np.zeros(len(s.background), int)]
    w = np.r_[np.full(3, 1 / 3), np.full(len(s.background), 1.0 / len(s.background))]
    q, c = fit_linear_model(fm, rows, y, 2, weights=w).binary_query()
    ref = 1 / (1 + np.exp(-(fm.decode(fm.vectors) @ q + c)))
    assert np.abs(p.ravel() - ref).max() <= s.query_error() + 1e-5


def test_probe_negative_clicks_push_down_and_errors_are_one_line():
    fm, truth = _two_bodies()
    s = make_search(fm, "probe")
    with pytest.raises(SeisfmError, match="add a positive click first"):
        s.score_map()
    s.add((5, 4, 6))
    before = s.score_map()[0, 0, 0]
    s.add((0, 0, 0), negative=True)
    assert s.score_map()[0, 0, 0] < before
    assert s.pop(negative=True) == (0, 0, 0)
    assert s.score_map()[0, 0, 0] == pytest.approx(before, abs=1e-6)
    with pytest.raises(SeisfmError, match="unknown decision"):
        make_search(fm, "oracle")


def test_probe_invalid_points_are_nan_and_never_matches():
    fm, truth = _two_bodies("float32")
    v = fm.decode(fm.vectors).reshape(*GRID, -1).copy()
    v[4, 3, 5] = np.nan
    fm = FeatureMatrix.from_array(v, GRID)
    s = ProbeSearch(fm)
    s.add((5, 4, 6))
    assert np.isnan(s.score_map()[4, 3, 5])
    assert np.isnan(s.scores_box((slice(4, 5), slice(None), slice(None)))[0, 3, 5])
    assert all(m.grid_index != (4, 3, 5) for m in s.top_matches(50, radius=0))
    assert fm.flat((4, 3, 5)) not in set(s.background)


def test_probe_with_context_is_the_logistic_fit_on_the_inputs_folded_onto_the_grid():
    """The map is sigmoid(inputs . theta + b) at every point (vector + smoothed vectors at fine and wide scales),
    computed by one dot product per fine scale, smoothed, and the wide scales' pooled terms; the section box
    (the preview) and scattered points give the same values."""
    from napari_seisfm.search.readouts import Inputs

    fm, truth = _two_bodies("float32")
    s = ProbeSearch(fm, context=(1.5, (0.0, 1.0, 2.0), 6.0))
    for c in [(5, 4, 6), (3, 2, 4)]:
        s.add(c)
    s.add((0, 0, 0), negative=True)
    p = s.score_map()
    X = Inputs(fm, s.context).box(tuple(slice(0, n) for n in GRID))
    ref = 1 / (1 + np.exp(-(X @ s._theta + s._bias)))
    np.testing.assert_allclose(p, ref, atol=1e-4)
    for box in [(slice(4, 5), slice(None), slice(None)), (slice(0, 12), slice(3, 4), slice(2, 9))]:
        np.testing.assert_allclose(s.scores_box(box), p[box], atol=1e-4)
    pts = [(0, 0, 0), (11, 9, 15), (5, 4, 6)]
    np.testing.assert_allclose(s.scores_at([fm.flat(q) for q in pts]), [p[q] for q in pts], atol=1e-4)
    assert iou(p >= 0.5, truth) > 0.65


def test_nonlinear_decisions_wait_for_clicks_and_keep_the_linear_preview():
    from napari_seisfm.search import DECISIONS

    fm, truth = _two_bodies("float32")
    assert {"probe", "mlp", "forest", "boosting", "conv", "centroid"} == set(DECISIONS)
    s = make_search(fm, "mlp")
    linear = ProbeSearch(fm)
    for search in (s, linear):
        search.add((5, 4, 6))
        search.add((3, 2, 4))
    np.testing.assert_array_equal(s.score_map(), linear.score_map())  # no negative click yet: the probe decides
    assert s.model is None
    for search in (s, linear):
        search.add((0, 0, 0), negative=True)
    p = s.score_map()
    assert s.model is not None and s.model.method == "mlp" and not np.array_equal(p, linear.score_map())
    assert auc(p, truth) > 0.95  # two positive clicks against 2 000 background points: it ranks well, calls cautiously
    section = (slice(5, 6), slice(None), slice(None))
    np.testing.assert_array_equal(s.scores_box(section), linear.scores_box(section))  # the preview stays linear


# ---------------------------------------------------------------------- connected regions
def test_connected_to_keeps_the_clicked_bodies_only():
    mask = np.zeros((6, 6, 6), bool)
    mask[0:2, 0:2, 0:2] = True
    mask[4:6, 4:6, 4:6] = True
    mask[0, 5, 5] = True
    kept = connected_to(mask, [(1, 1, 1)])
    assert kept.sum() == 8 and kept[0, 0, 0] and not kept[5, 5, 5]
    assert connected_to(mask, [(1, 1, 1), (5, 5, 5)]).sum() == 16
    assert not connected_to(mask, [(3, 3, 3)]).any()  # a click outside the mask selects nothing
    assert not connected_to(mask, [(9, 9, 9)]).any()  # outside the grid: ignored
    assert not connected_to(np.zeros((3, 3, 3), bool), [(1, 1, 1)]).any()
    score = np.where(mask, 0.9, 0.1)
    score[2, 2, 2] = np.nan  # no value: never selected
    np.testing.assert_array_equal(threshold_mask(score, 0.5, [(1, 1, 1)]), kept)
    np.testing.assert_array_equal(threshold_mask(score, 0.5, [(1, 1, 1)], connected=False), mask)


# ---------------------------------------------------------------------- linear segmenter
def _layered(seed=4, dtype="int8"):
    """Three classes in layers along time, noisy vectors, some isolated label noise, one dead trace."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(GRID, int)
    truth[..., 5:11] = 1
    truth[..., 11:] = 2
    v = rng.normal(size=(*GRID, 5)).astype(np.float32)
    v[..., :3] += 1.6 * np.eye(3, dtype=np.float32)[truth]
    v[2, 3, :] = np.nan  # a dead trace
    fm = FeatureMatrix.from_array(v, GRID, dtype=dtype)
    pts, cls = [], []
    for c in range(3):
        where = np.argwhere((truth == c) & fm.valid.reshape(GRID))
        take = where[rng.choice(len(where), 25, replace=False)]
        pts.append(take)
        cls += [c + 1] * 25
    return fm, truth, np.concatenate(pts), np.asarray(cls)


def test_linear_segmenter_beats_knn_and_smoothing_helps():
    fm, truth, pts, cls = _layered()
    valid = fm.valid.reshape(GRID)
    acc = lambda r: np.mean((r.classes - 1)[valid] == truth[valid])  # noqa: E731
    knn = acc(KnnSegmenter(fm, pts, cls, k=5).segment())
    raw = acc(LinearSegmenter(fm, pts, cls, smooth=0).segment())
    smooth = acc(LinearSegmenter(fm, pts, cls, smooth=1.0).segment())
    assert raw > knn and smooth > raw and smooth > 0.97


@pytest.mark.parametrize("smooth", [0.0, 1.0, (0.0, 1.5, 1.0)])
def test_linear_slice_and_region_equal_the_whole_grid(smooth):
    fm, truth, pts, cls = _layered()
    seg = LinearSegmenter(fm, pts, cls, smooth=smooth)
    whole = seg.segment()
    valid = fm.valid.reshape(GRID)
    np.testing.assert_allclose(whole.probabilities[valid].sum(-1), 1, atol=1e-5)
    assert (whole.classes[~valid] == 0).all() and np.isnan(whole.confidence[~valid]).all()
    for axis, index in ((0, 0), (0, 6), (1, 9), (2, 7)):
        s = seg.segment_slice(axis, index)
        take = [slice(None)] * 3
        take[axis] = index
        np.testing.assert_array_equal(s.classes, whole.classes[tuple(take)])
        np.testing.assert_allclose(s.probabilities, whole.probabilities[tuple(take)], atol=1e-6)
    r = seg.segment_region((slice(2, 5), slice(None), slice(3, 9)))
    np.testing.assert_array_equal(r.classes, whole.classes[2:5, :, 3:9])


def test_linear_segment_progress_cancel_and_bad_input():
    fm, truth, pts, cls = _layered()
    seg = make_segmenter(fm, pts, cls, "linear", smooth=1.0)
    seen = []
    seg.segment(batch=500, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    with pytest.raises(SeisfmCancelled):
        seg.segment(batch=500, cancel=lambda: True)
    calls = iter([False] + [True] * 100)  # one batch passes, then the smoothing is cancelled
    with pytest.raises(SeisfmCancelled, match="smoothing"):
        seg.segment(batch=10_000, cancel=lambda: next(calls))
    with pytest.raises(SeisfmError, match="at least two classes"):
        LinearSegmenter(fm, pts[cls == 1], cls[cls == 1])
    with pytest.raises(SeisfmError, match="dead trace|invalid|valid embeddings"):
        LinearSegmenter(fm, np.r_[pts[cls == 1], [[2, 3, 0], [2, 3, 1]]], np.r_[cls[cls == 1], [2, 2]])
    for bad in (-1, np.nan, (1, 2)):
        with pytest.raises(SeisfmError, match="smoothing"):
            LinearSegmenter(fm, pts, cls, smooth=bad)
    with pytest.raises(SeisfmError, match="unknown segmentation method"):
        make_segmenter(fm, pts, cls, "svm")


def test_context_features_at_points_equal_the_whole_grid_smoothing():
    from scipy import ndimage

    from napari_seisfm.search.context import Context

    fm, truth, pts, cls = _layered()
    st = Standardiser.of(fm)
    z = st(fm.decode(fm.vectors))
    z[~fm.valid] = 0
    z = z.reshape(*GRID, -1)
    ctx = Context(fm, st, (1.5, (0.0, 1.0, 2.5)))
    probe = np.array([[0, 0, 0], [11, 9, 15], [5, 4, 7], [2, 3, 5], [6, 0, 15]])
    raw = ctx.raw_at(probe)
    for s, sigma3 in enumerate(ctx.scales):
        full = np.stack(
            [ndimage.gaussian_filter(z[..., d], sigma3, mode="nearest", truncate=2.0) for d in range(z.shape[-1])], -1
        )
        np.testing.assert_allclose(raw[:, s], full[tuple(probe.T)], atol=1e-5)


@pytest.mark.parametrize("context", [(1.5,), (1.0, (0.0, 2.0, 2.0))])
def test_linear_with_context_slice_equals_whole_grid_and_helps(context):
    fm, truth, pts, cls = _layered(seed=8)
    seg = LinearSegmenter(fm, pts, cls, smooth=1.0, context=context)
    whole = seg.segment()
    for axis, index in ((0, 0), (0, 6), (1, 9), (2, 7)):
        s = seg.segment_slice(axis, index)
        take = [slice(None)] * 3
        take[axis] = index
        np.testing.assert_array_equal(s.classes, whole.classes[tuple(take)])
        np.testing.assert_allclose(s.probabilities, whole.probabilities[tuple(take)], atol=1e-5)
    valid = fm.valid.reshape(GRID)
    acc = lambda r: np.mean((r.classes - 1)[valid] == truth[valid])  # noqa: E731
    assert acc(whole) >= acc(LinearSegmenter(fm, pts, cls, smooth=1.0).segment()) - 0.01
    with pytest.raises(SeisfmError, match="context scale"):
        LinearSegmenter(fm, pts, cls, context=(-1,))


def test_a_few_painted_points_on_two_clean_halves_segment_them_exactly():
    """The dock's usual case: a few strokes. The context must not leak across the class boundary."""
    rng = np.random.default_rng(1)
    g = (16, 16, 16)
    upper = (np.arange(16) < 8)[None, None, :] * np.ones(g, bool)
    v = rng.normal(0, 0.1, g + (8,))
    v[..., 0] += upper
    v[..., 1] += ~upper
    fm = FeatureMatrix.from_array(v.astype(np.float32), g, dtype="int8")
    lab = np.zeros(g, int)
    lab[3, 3:6, 2] = 1
    lab[12, 8:11, 12] = 2
    pts = np.argwhere(lab > 0)
    truth = np.where(upper, 1, 2)
    assert (LinearSegmenter(fm, pts, lab[tuple(pts.T)]).segment().classes == truth).all()
    leaky = LinearSegmenter(fm, pts, lab[tuple(pts.T)], context_penalty=1.0).segment().classes
    assert (leaky != truth).sum() > 50  # what the penalty is for


def test_probe_map_is_the_same_with_one_or_two_threads_on_a_large_grid():
    rng = np.random.default_rng(9)
    grid = (128, 128, 72)  # over a million points: the threaded sigmoid
    v = rng.integers(-127, 128, size=(np.prod(grid), 4)).astype(np.int8)
    fm = FeatureMatrix.from_array(v, grid)
    maps = []
    for threads in (1, 2):
        s = ProbeSearch(fm, threads=threads)
        s.add((5, 5, 5))
        s.add((60, 60, 30), negative=True)
        maps.append(s.score_map().copy())
    np.testing.assert_array_equal(maps[0], maps[1])
    assert maps[0].min() >= 0 and maps[0].max() <= 1
