"""The read-outs beside the linear one (forest, boosting, MLP, conv head) and the wide, pooled context scales."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_seisfm.errors import SeisfmCancelled, SeisfmError
from napari_seisfm.search import SEGMENTERS, FeatureMatrix, LinearSegmenter, make_segmenter
from napari_seisfm.search.context import Context, Pooled, coarse_sigma, pool_factors
from napari_seisfm.search.linear import Standardiser
from napari_seisfm.search.readouts import READOUTS, Inputs, fit_mlp

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

GRID = (12, 10, 16)
NONLINEAR = ("forest", "boosting", "mlp", "conv")
FAST = {"conv": {"epochs": 20}, "forest": {"trees": 30}, "boosting": {"rounds": 30}}  # small models: seconds, not minutes


def _layered(seed=4):
    """Three classes in layers along time, noisy vectors, one dead trace, 25 labelled points per class."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(GRID, int)
    truth[..., 5:11] = 1
    truth[..., 11:] = 2
    v = rng.normal(size=(*GRID, 5)).astype(np.float32)
    v[..., :3] += 1.6 * np.eye(3, dtype=np.float32)[truth]
    v[2, 3, :] = np.nan  # a dead trace
    fm = FeatureMatrix.from_array(v, GRID, dtype="int8")
    pts, cls = [], []
    for c in range(3):
        where = np.argwhere((truth == c) & fm.valid.reshape(GRID))
        pts.append(where[rng.choice(len(where), 25, replace=False)])
        cls += [c + 1] * 25
    return fm, truth, np.concatenate(pts), np.asarray(cls)


def _xor(seed=3):
    """Two classes that no linear read-out separates: class 2 where the signs of two dimensions differ."""
    rng = np.random.default_rng(seed)
    g = (10, 10, 10)
    v = rng.normal(size=(*g, 4)).astype(np.float32)
    truth = (np.sign(v[..., 0]) != np.sign(v[..., 1])).astype(int)
    fm = FeatureMatrix.from_array(v, g, dtype="float32")
    pts = np.argwhere(np.ones(g, bool))[rng.choice(1000, 300, replace=False)]
    return fm, truth, pts, truth[tuple(pts.T)] + 1


def test_registry_holds_every_read_out_and_refuses_unknown_names():
    assert set(SEGMENTERS) == {"linear", "knn", *NONLINEAR} and set(READOUTS) == set(NONLINEAR)
    fm, truth, pts, cls = _layered()
    with pytest.raises(SeisfmError, match="unknown segmentation method 'svm'; choose from linear, forest"):
        make_segmenter(fm, pts, cls, "svm")


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.extra("torch")) if m == "conv" else m for m in NONLINEAR])
def test_read_out_segments_slices_equal_the_whole_grid(method):
    fm, truth, pts, cls = _layered()
    seg = make_segmenter(fm, pts, cls, method, context=(1.5, 6.0), **FAST.get(method, {}))
    whole = seg.segment(batch=300)  # several slabs on worker threads
    valid = fm.valid.reshape(GRID)
    assert np.mean((whole.classes - 1)[valid] == truth[valid]) > 0.9
    np.testing.assert_allclose(whole.probabilities[valid].sum(-1), 1, atol=1e-5)
    assert (whole.classes[~valid] == 0).all() and np.isnan(whole.confidence[~valid]).all()
    for axis, index in ((0, 0), (0, 6), (1, 9), (2, 7), (2, 15)):
        s = seg.segment_slice(axis, index)
        take = [slice(None)] * 3
        take[axis] = index
        np.testing.assert_array_equal(s.classes, whole.classes[tuple(take)])
        np.testing.assert_allclose(s.probabilities, whole.probabilities[tuple(take)], atol=1e-5)
    r = seg.segment_region((slice(2, 5), slice(None), slice(3, 9)))
    np.testing.assert_array_equal(r.classes, whole.classes[2:5, :, 3:9])


@pytest.mark.parametrize("method", ["forest", "boosting", "mlp"])
def test_nonlinear_read_outs_separate_what_the_linear_one_cannot(method):
    fm, truth, pts, cls = _xor()
    acc = lambda r: np.mean(r.classes - 1 == truth)  # noqa: E731
    linear = acc(LinearSegmenter(fm, pts, cls, smooth=0, context=()).segment())
    nonlinear = acc(make_segmenter(fm, pts, cls, method, smooth=0, context=()).segment())
    assert linear < 0.7 and nonlinear > 0.85


def test_read_out_progress_cancel_and_bad_options():
    fm, truth, pts, cls = _layered()
    seg = make_segmenter(fm, pts, cls, "mlp")
    seen = []
    seg.segment(batch=300, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] == 2 * fm.grid.size and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    with pytest.raises(SeisfmCancelled):
        seg.segment(batch=300, cancel=lambda: True)
    calls = iter([False] + [True] * 100)  # the one slab passes, then the smoothing is cancelled
    with pytest.raises(SeisfmCancelled, match="smoothing"):
        seg.segment(batch=10_000, cancel=lambda: next(calls))
    with pytest.raises(SeisfmError, match="at least two classes"):
        make_segmenter(fm, pts[cls == 1], cls[cls == 1], "forest")
    with pytest.raises(SeisfmError, match="smoothing"):
        make_segmenter(fm, pts, cls, "mlp", smooth=-1)
    with pytest.raises(SeisfmError, match="context scale"):
        make_segmenter(fm, pts, cls, "forest", context=(-2,))
    for method, bad in (("forest", {"trees": 0}), ("boosting", {"rate": 0}), ("mlp", {"hidden": 0}), ("conv", {"epochs": 0})):
        with pytest.raises(SeisfmError, match="needs"):
            make_segmenter(fm, pts, cls, method, **bad)


def test_inputs_on_a_box_equal_the_inputs_at_points():
    fm, truth, pts, cls = _layered()
    inputs = Inputs(fm, (1.5, (0.0, 1.0, 2.5), 6.0))
    flat = np.ravel_multi_index(tuple(pts.T), fm.shape)
    at = inputs.at(flat)
    assert at.shape == (len(pts), fm.dim * 4)
    whole = inputs.box(tuple(slice(0, n) for n in fm.shape))
    np.testing.assert_allclose(whole[tuple(pts.T)], at, atol=2e-4)
    part = inputs.box((slice(3, 7), slice(2, 9), slice(0, 16)))
    np.testing.assert_array_equal(part, whole[3:7, 2:9])  # any box holding a point gives it identical inputs


def test_pooled_grid_is_the_block_mean_and_interpolates_from_block_centres():
    fm, truth, pts, cls = _layered()
    st = Standardiser.of(fm)
    z = st(fm.decode(fm.vectors))
    z[~fm.valid] = 0
    z = z.reshape(*GRID, -1)
    pooled = Pooled(fm, st, (4, 4, 1))
    assert pooled.coarse_shape == (3, 3, 16)
    np.testing.assert_allclose(pooled.grid[1, 2, 5], z[4:8, 8:10, 5].mean(axis=(0, 1)), atol=1e-5)  # a clipped edge block
    ramp = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 3, 16, 1), np.float32)
    box = pooled.box(ramp, (slice(0, 12), slice(0, 10), slice(0, 16)))[:, 0, 0, 0]
    # block b's centre is grid point 4 b + 1.5: linear between centres, flat beyond the outer ones
    np.testing.assert_allclose(box, np.clip((np.arange(12) - 1.5) / 4, 0, 2), atol=1e-6)
    pts_all = np.argwhere(np.ones(GRID, bool))
    np.testing.assert_allclose(pooled.at(ramp, pts_all)[:, 0], np.clip((pts_all[:, 0] - 1.5) / 4, 0, 2), atol=1e-6)


def test_wide_scale_approximates_the_gaussian_and_keeps_the_linear_slice_exact():
    rng = np.random.default_rng(0)
    g = (32, 32, 32)
    smooth_field = ndimage.gaussian_filter(rng.normal(size=g), 3)[..., None] * np.array([1.0, -1.0, 0.5])
    v = (smooth_field + 0.01 * rng.normal(size=(*g, 3))).astype(np.float32)
    fm = FeatureMatrix.from_array(v, g, dtype="float32")
    st = Standardiser.of(fm)
    ctx = Context(fm, st, (6.0,))
    assert pool_factors((6.0, 6.0, 6.0)) == (4, 4, 4) and abs(coarse_sigma((6.0,) * 3, (4,) * 3)[0] - 1.47) < 0.01
    z = st(fm.decode(fm.vectors)).reshape(*g, -1)
    exact = ndimage.gaussian_filter(z[..., 0], 6.0, mode="nearest", truncate=2.0)
    pts = np.argwhere(np.ones(g, bool))[::7]
    wide = ctx.raw_at(pts)[:, 0, 0]
    assert np.corrcoef(wide, exact[tuple(pts.T)])[0, 1] > 0.97  # about the Gaussian asked for
    truth = (np.arange(32) >= 16)[None, None, :] * np.ones(g, int)
    lab_pts = np.argwhere(np.ones(g, bool))[rng.choice(32**3, 200, replace=False)]
    seg = LinearSegmenter(fm, lab_pts, truth[tuple(lab_pts.T)] + 1, context=(1.5, 6.0, 12.0))
    whole = seg.segment()
    for axis, index in ((0, 3), (1, 31), (2, 16)):
        s = seg.segment_slice(axis, index)
        take = [slice(None)] * 3
        take[axis] = index
        np.testing.assert_array_equal(s.classes, whole.classes[tuple(take)])
        np.testing.assert_allclose(s.probabilities, whole.probabilities[tuple(take)], atol=1e-5)


def test_mlp_fit_reaches_a_stationary_point():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    W1, b1, W2, b2 = fit_mlp(X, y, 2, hidden=6, l2=1e-2, max_iter=2000)
    h = np.tanh(X @ W1 + b1)
    p = np.exp(h @ W2 + b2)
    p /= p.sum(1, keepdims=True)
    assert np.mean(np.argmax(p, 1) == y) > 0.9
    g = (p - np.eye(2)[y]) / len(y)  # gradient of the mean cross-entropy + L2 w.r.t. W2
    assert np.abs(h.T @ g + 1e-2 * W2).max() < 1e-3


@pytest.mark.extra("torch")
def test_conv_head_on_image_stacks_convolves_within_each_image_only():
    fm, truth, pts, cls = _layered()
    seg = make_segmenter(fm, pts, cls, "conv", axes=(0, 1, 1), context=((0, 1.5, 1.5),), smooth=(0, 1, 1), epochs=10)
    assert seg.model_reach == (0, 3, 3) and seg.halo[0] == 0
    whole = seg.segment()
    np.testing.assert_array_equal(seg.segment_slice(0, 4).classes, whole.classes[4])


def test_mlp_folded_first_layer_equals_the_materialised_inputs():
    fm, truth, pts, cls = _layered()
    seg = make_segmenter(fm, pts, cls, "mlp", context=(1.5, (0.0, 1.0, 2.5), 6.0))
    box = (slice(0, 12), slice(0, 10), slice(0, 16))
    X = seg.inputs.box(box)
    direct = seg._predict(X.reshape(-1, X.shape[-1])).reshape(*X.shape[:-1], -1)
    np.testing.assert_allclose(seg._predict_box(box), direct, atol=2e-5)


def test_cli_segment_with_a_nonlinear_read_out_equals_the_api(tmp_path, capsys):
    from test_search import make_store, structured

    from napari_seisfm.cli import main as cli
    from napari_seisfm.search import support_from_labels

    v, region = structured(seed=5)
    path = make_store(tmp_path / "f.zarr", v)
    fm = FeatureMatrix.open(path)
    lab = np.zeros(GRID, np.int32)
    lab[2, 2, [0, 1, 2, 14, 15]] = [1, 1, 1, 2, 2]
    lab[9, 7, [0, 1, 12, 13]] = [1, 1, 2, 2]
    np.save(tmp_path / "lab.npy", lab)
    out = tmp_path / "cls.npy"
    assert (
        cli(
            [
                "segment",
                str(path),
                "--labels",
                str(tmp_path / "lab.npy"),
                "--out",
                str(out),
                "--method",
                "forest",
                "--context",
                "1.5,6",
                "--probabilities",
                str(tmp_path / "p.npy"),
            ]
        )
        == 0
    )
    assert "forest (smooth 1, context 1.5,6)" in capsys.readouterr().out
    pts, cls = support_from_labels(lab, fm.grid)
    r = make_segmenter(fm, pts, cls, "forest", context=(1.5, 6.0)).segment()
    np.testing.assert_array_equal(np.load(out), r.classes)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), r.probabilities)
