"""Click-to-map without a viewer: ranking quality (AUC), interpretation files, click sync, bench metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_seisfm import quality
from napari_seisfm.errors import SeisfmError
from napari_seisfm.interpretation import (
    Interpretation,
    load_interpretation,
    save_interpretation,
    sync_clicks,
)
from napari_seisfm.search import CentroidSearch, FeatureMatrix, auto_threshold
from napari_seisfm.store.grid import GridSpec

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_spot_click_ranks_flat_spot_above_background(tmp_path, seed):
    """Three clicks on the flat spot of one inline: flat-spot grid points score above background (AUC)."""
    survey, _, fm, truth, _ = quality.prepare(48, seed, 2, tmp_path)
    flat = survey.classes["flat_spot"]
    assert (truth == flat).sum() > 10
    r = quality.click_quality(fm, truth, flat, n_pos=3, n_neg=0, seed=seed)
    assert r["auc"] > 0.85
    # the same number by brute force over all (flat spot, background) pairs
    search = CentroidSearch(fm)
    search.set_clicks(r["positives"])
    s = search.score_map()
    pos, neg = s[truth == flat], s[truth != flat]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert r["auc"] == pytest.approx(brute, abs=1e-4)


def test_auc_and_iou_formulas():
    assert quality.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert quality.auc([1, 2, 3], [1, 1, 1]) != quality.auc([1, 2, 3], [1, 1, 1])  # NaN: one class only
    assert quality.iou(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)) == pytest.approx(1 / 3)
    m, per = quality.mean_iou(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), (0, 1, 2))
    assert per == {0: 1.0, 1: 0.5, 2: 0.5} and m == pytest.approx(2 / 3)


def _matrix(seed=0):
    rng = np.random.default_rng(seed)
    return FeatureMatrix.from_array(rng.normal(size=(6, 5, 4, 8)).astype(np.float32), (6, 5, 4), dtype="int8")


def test_sync_clicks_adds_and_removes_only_the_difference():
    fm = _matrix()
    search = CentroidSearch(fm, kernel="numpy")
    assert sync_clicks(search, [(1, 1, 1), (2, 2, 2)], [(0, 0, 0)])
    first = search.score_map().copy()
    assert not sync_clicks(search, [(2, 2, 2), (1, 1, 1)], [(0, 0, 0)])  # same multiset: nothing to do
    assert sync_clicks(search, [(1, 1, 1), (2, 2, 2), (2, 2, 2)], [])
    ref = CentroidSearch(fm, kernel="numpy")
    ref.set_clicks([(1, 1, 1), (2, 2, 2), (2, 2, 2)])
    np.testing.assert_allclose(search.score_map(), ref.score_map(), atol=1e-6)
    sync_clicks(search, [(1, 1, 1), (2, 2, 2)], [(0, 0, 0)])
    np.testing.assert_allclose(search.score_map(), first, atol=1e-6)


def test_auto_threshold_keeps_every_click():
    fm = _matrix(1)
    search = CentroidSearch(fm, kernel="numpy")
    clicks = [(1, 2, 3), (4, 0, 1)]
    search.set_clicks(clicks)
    s = search.score_map()
    t = auto_threshold(s, clicks)
    assert all(s[c] >= t for c in clicks) and t == min(s[c] for c in clicks)
    with pytest.raises(SeisfmError, match="positive click"):
        auto_threshold(s, [])


def test_interpretation_round_trip(tmp_path, monkeypatch):
    labels = np.zeros((5, 6, 7), np.int32)
    labels[1, 2, 3] = 1
    labels[4, 5, 6] = 3
    interp = Interpretation(
        positives=[(1000.0, 2000.0, 120.0)],
        negatives=[(1001.0, 2002.0, 8.0), (1003.0, 2004.0, 12.0)],
        labels=labels,
        labels_scale=(2, 2, 8),
        labels_translate=(1000, 2000, 0),
        labels_name="strokes",
        params={"k": 9, "weighted": True, "threshold": 0.61},
        features_path="f.zarr",
        cube_path="/data/c.sgy",
        cube_fingerprint="abc",
    )
    monkeypatch.chdir(tmp_path)  # "f.zarr" is beside the session file; the cube lives elsewhere
    path = save_interpretation(tmp_path / "session", interp)
    assert path.name == "session.json" and (tmp_path / "session.labels.npz").exists()
    doc = json.loads(path.read_text())
    assert doc["format"] == "seisfm-interpretation" and doc["labels"]["count"] == 2
    back = load_interpretation(path, fingerprint="abc")
    assert back.positives == interp.positives and back.negatives == interp.negatives
    np.testing.assert_array_equal(back.labels, labels)
    assert back.labels_scale == (2, 2, 8) and back.labels_translate == (1000, 2000, 0) and back.labels_name == "strokes"
    assert back.params == {"k": 9, "weighted": True, "threshold": 0.61}
    assert (back.features_path, back.cube_path, back.cube_fingerprint) == (str(tmp_path / "f.zarr"), "/data/c.sgy", "abc")
    assert doc["features"]["path"] == "f.zarr" and doc["cube"]["path"] == "/data/c.sgy"  # relative only beside the file
    # the folder moves, and it is reopened from another working directory: paths follow the file
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in ("session.json", "session.labels.npz"):
        (tmp_path / f).rename(moved / f)
    monkeypatch.chdir("/")
    again = load_interpretation(moved / "session.json")
    assert again.features_path == str(moved / "f.zarr") and again.cube_path == "/data/c.sgy"
    path = moved / "session.json"
    # saving again without labels removes the stale label file
    interp.labels = None
    save_interpretation(path, interp)
    assert not (moved / "session.labels.npz").exists() and load_interpretation(path).labels is None


def test_interpretation_bad_input(tmp_path):
    with pytest.raises(SeisfmError, match="no such interpretation"):
        load_interpretation(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SeisfmError, match="not a readable interpretation"):
        load_interpretation(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(SeisfmError, match="not a napari-seisfm interpretation"):
        load_interpretation(other)
    path = save_interpretation(
        tmp_path / "s.json", Interpretation(positives=[(1, 2, 3)], labels=np.ones((2, 2, 2), int), cube_fingerprint="abc")
    )
    with pytest.raises(SeisfmError, match="another cube"):
        load_interpretation(path, fingerprint="xyz")
    (tmp_path / "s.labels.npz").unlink()
    with pytest.raises(SeisfmError, match="missing"):
        load_interpretation(path)


def test_grid_labels_and_support():
    labels = np.arange(8 * 8 * 8).reshape(8, 8, 8) % 3
    grid = GridSpec((4, 4, 4), (2, 2, 2))
    np.testing.assert_array_equal(quality.grid_labels(labels, grid), labels[::2, ::2, ::2])
    truth = quality.grid_labels(labels, grid)
    pts, lab = quality.sample_support(truth, (0, 1, 2), 5, np.random.default_rng(0))
    assert len(pts) == 15 and set(lab) == {1, 2, 3}
    assert all(truth[tuple(p)] + 1 == c for p, c in zip(pts, lab))
