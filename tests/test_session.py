"""ClickToMapSession without Qt: clicks in survey units, undo, stale results, threshold policy, segmentation,
save/open, and the CLI driving the same object."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_seisfm.errors import SeisfmError
from napari_seisfm.search import CentroidSearch, FeatureMatrix, make_search, threshold_mask
from napari_seisfm.session import ClickToMapSession, quantise_threshold, run_to_end
from napari_seisfm.store.grid import GridSpec

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

# a 24 x 20 x 64 cube (inlines 100.., crosslines 1000.. step 2, 4 ms) on a stride-(2, 2, 4) grid
GEOMETRY = {
    "shape": [24, 20, 64],
    "ilines": [100, 123, 1],
    "xlines": [1000, 1038, 2],
    "samples": [0, 252, 4],
    "sample_unit": "ms",
    "fingerprint": "abc123",
    "source": "synthetic.sgy",
}
GRID = GridSpec((12, 10, 16), (2, 2, 4))


def two_bodies(seed=0) -> FeatureMatrix:
    """Two kinds of vector: 'target' in a box, 'background' elsewhere, plus noise (int8 like a real store)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=16), rng.normal(size=16)
    v = np.broadcast_to(b, (*GRID.shape, 16)).copy()
    v[2:9, 2:8, 4:12] = a
    v += 0.05 * rng.normal(size=v.shape)
    v[0, 0, 0] = np.nan  # one grid point without an embedding
    return FeatureMatrix.from_array(v.astype(np.float32), GRID, dtype="int8", cube_summary=GEOMETRY)


@pytest.fixture
def session():
    return ClickToMapSession(two_bodies(), decision="centroid", kernel="numpy")


def survey(grid_point):
    """Survey coordinates of a grid point of GRID under GEOMETRY."""
    i, x, t = np.asarray(grid_point) * GRID.stride
    return (100 + i, 1000 + 2 * x, 4 * t)


def test_clicks_are_kept_as_clicked_and_count_at_the_nearest_grid_point(session):
    assert session.add_click((109.2, 1017, 83)) == (5, 4, 5)  # snapped: inline 109.2 -> cube 9.2 -> grid 5 (cube 10)
    assert session.positives == [(109.2, 1017.0, 83.0)]  # drawn where it was clicked
    assert session.grid_positives == [(5, 4, 5)]
    with pytest.raises(SeisfmError, match="crossline 997 not in 1000..1038"):
        session.add_click((110, 997, 40))
    with pytest.raises(SeisfmError, match="time 300 not in 0..252 ms"):
        session.add_click((110, 1004, 300), negative=True)
    with pytest.raises(SeisfmError, match="no valid embedding"):
        session.add_click((100, 1000, 0))
    assert session.negatives == [] and len(session.positives) == 1  # refused clicks leave nothing behind


def test_undo_removes_the_latest_click_of_either_kind(session):
    session.add_click(survey((4, 3, 6)))
    session.add_click(survey((10, 8, 12)), negative=True)
    session.add_click(survey((5, 4, 7)))
    assert session.undo()
    assert session.grid_positives == [(4, 3, 6)] and session.grid_negatives == [(10, 8, 12)]
    assert session.undo() and session.grid_negatives == []
    assert session.undo() and not session.undo()


def test_set_clicks_keeps_the_undo_order_and_reports_refused_points(session):
    session.add_click(survey((4, 3, 6)))
    session.add_click(survey((10, 8, 12)), negative=True)
    refused = session.set_clicks([survey((4, 3, 6)), survey((5, 4, 7)), (90, 1000, 0)], [survey((10, 8, 12))])
    assert len(refused) == 1 and "inline 90 not in 100..123" in refused[0]
    session.undo()  # the newest is the one set_clicks added, not the older ones it kept
    assert session.grid_positives == [(4, 3, 6)] and session.grid_negatives == [(10, 8, 12)]


def test_the_map_equals_the_search_engine_and_finds_the_body(session):
    session.add_click(survey((4, 3, 6)))
    session.add_click(survey((10, 8, 12)), negative=True)
    r = session.update()
    ref = CentroidSearch(session.features, kernel="numpy")
    ref.set_clicks([(4, 3, 6)], [(10, 8, 12)])
    np.testing.assert_array_equal(r.score, ref.score_map())
    assert r.default_threshold == quantise_threshold(ref.default_threshold())
    box = np.zeros(GRID.shape, bool)
    box[2:9, 2:8, 4:12] = True
    mask = r.mask.astype(bool)
    assert not (mask & ~box).any() and mask[box].mean() > 0.3  # a good part of the body and nothing else
    assert box[r.matches[0].grid_index]  # the best match (away from the click) is inside it
    assert r.matches[0].survey == survey(r.matches[0].grid_index)  # matches carry survey coordinates


def test_a_result_computed_before_the_clicks_changed_is_dropped(session):
    session.add_click(survey((4, 3, 6)))
    snap = session.snapshot()
    session.add_click(survey((10, 8, 12)), negative=True)  # the user clicks while the worker runs
    stale = session.compute(snap)
    seen = []
    session.map_changed.connect(seen.append)
    assert not session.accept(stale) and session.result is None and seen == []
    fresh = session.compute()
    assert session.accept(fresh) and seen == [fresh]
    session.set_decision("probe")  # a new rule makes the current map stale too
    assert not session.is_current(fresh)


def test_removing_the_last_positive_click_removes_the_map(session):
    session.add_click(survey((4, 3, 6)))
    session.update()
    seen = []
    session.map_changed.connect(seen.append)
    session.undo()
    assert session.result is None and seen == [None]
    assert session.update() is None
    with pytest.raises(SeisfmError, match="positive click"):
        session.compute()


def test_threshold_policy_default_then_user_then_auto(session):
    session.add_click(survey((4, 3, 6)))
    session.add_click(survey((5, 4, 7)))
    r = session.update()
    assert session.threshold_is_auto and session.threshold == r.default_threshold
    assert r.default_threshold <= min(r.score[p] for p in session.grid_positives)  # every click inside the mask
    session.set_threshold(0.99)
    np.testing.assert_array_equal(session.mask(), threshold_mask(r.score, 0.99, session.grid_positives).astype(np.uint8))
    session.add_click(survey((6, 5, 8)))
    assert session.update().threshold == 0.99  # a user's threshold survives new clicks
    session.set_threshold(None)
    assert session.update().threshold == session.result.default_threshold
    all_bodies = session.mask(connected=False)
    assert all_bodies.sum() >= session.mask().sum()


def test_quantised_threshold_never_exceeds_the_rule():
    assert quantise_threshold(0.4567) == pytest.approx(0.45)
    assert quantise_threshold(-0.001) == pytest.approx(-0.01)
    assert quantise_threshold(0.5) == pytest.approx(0.5)
    assert quantise_threshold(7.0) == 2.0


def test_segmentation_slice_first_then_whole_grid(session):
    labels = np.zeros(GRID.shape, np.int32)
    labels[4, 3, 6] = labels[5, 4, 7] = 1
    labels[10, 8, 12] = labels[1, 1, 1] = 2
    points, classes = session.support(labels)
    steps = session.segment(points, classes, region=(slice(4, 5), slice(None), slice(None)))
    first = next(steps)
    assert first.classes.size == GRID.shape[1] * GRID.shape[2]
    whole = run_to_end(steps)
    assert whole.classes.shape == GRID.shape
    assert whole.classes[5, 3, 6] == 1 and whole.classes[11, 9, 14] == 2
    with pytest.raises(SeisfmError, match="at least two classes"):
        session.support(np.where(labels == 1, 1, 0))


def test_save_and_open_round_trip(session, tmp_path):
    session.add_click((104.4, 1006.2, 24.5))
    session.add_click(survey((10, 8, 12)), negative=True)
    session.segmentation.method, session.segmentation.k = "knn", 7
    session.set_threshold(0.42)
    path = session.save(tmp_path / "interp")
    other = ClickToMapSession(session.features, cube_fingerprint=session.cube_fingerprint, kernel="numpy")
    interp = other.load(path)
    assert other.positives == [(104.4, 1006.2, 24.5)] and other.grid_negatives == [(10, 8, 12)]
    assert (other.decision, other.segmentation.method, other.segmentation.k, other.threshold) == ("centroid", "knn", 7, 0.42)
    assert interp.labels is None
    np.testing.assert_array_equal(other.update().score, session.update().score)


def test_open_refuses_an_interpretation_of_another_cube(session, tmp_path):
    session.cube_fingerprint = "abc123"
    session.add_click(survey((4, 3, 6)))
    path = session.save(tmp_path / "a.json")
    other = ClickToMapSession(session.features, cube_fingerprint="ffff0000")
    with pytest.raises(SeisfmError, match="another cube"):
        other.load(path)


def test_unknown_decision_is_one_line(session):
    with pytest.raises(SeisfmError, match="unknown decision 'nearest'"):
        session.set_decision("nearest")


def test_store_without_geometry_says_to_use_grid_indices():
    fm = FeatureMatrix.from_array(np.ones((4, 4, 4, 8), np.float32), (4, 4, 4))
    s = ClickToMapSession(fm)
    with pytest.raises(SeisfmError, match="no usable cube geometry"):
        s.add_click((1, 1, 1))
    assert s.add_click((1, 2, 3), space="grid") == (1, 2, 3)


def test_session_map_matches_make_search_probe():
    fm = two_bodies(1)
    s = ClickToMapSession(fm, kernel="numpy")  # the default decision
    for g in ((4, 3, 6), (5, 4, 7)):
        s.add_click(survey(g))
    s.add_click(survey((10, 8, 12)), negative=True)
    ref = make_search(fm, kernel="numpy")
    ref.set_clicks([(4, 3, 6), (5, 4, 7)], [(10, 8, 12)])
    np.testing.assert_allclose(s.update().score, ref.score_map(), atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("decision", ["probe", "centroid"])
def test_preview_of_the_section_on_screen_equals_the_whole_map_there(decision):
    s = ClickToMapSession(two_bodies(2), decision=decision, kernel="numpy")
    s.add_click(survey((4, 3, 6)))
    s.add_click(survey((10, 8, 12)), negative=True)
    snap = s.snapshot()
    region = (slice(4, 5), slice(None), slice(None))
    preview = s.preview(snap, region)
    full = s.compute(snap)
    assert preview.score.shape == (1, 10, 16) and preview.region == (slice(4, 5), slice(0, 10), slice(0, 16))
    np.testing.assert_allclose(preview.score, full.score[region], atol=1e-5, equal_nan=True)
    assert preview.default_threshold == full.default_threshold


def test_one_match_per_body_and_none_in_the_clicked_one():
    """A laterally continuous reflector (a band across the whole grid, like the seabed) and a second body:
    each is one match, the clicked body none; below the threshold the radius rule still spaces them."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=16), rng.normal(size=16)
    v = np.broadcast_to(b, (*GRID.shape, 16)).copy()
    v[2:5, 2:5, 4:7] = a  # the clicked body
    v[8:11, 6:9, 10:13] = a  # the same thing elsewhere
    v[:, :, 1] = a  # a band through every trace
    v += 0.05 * rng.normal(size=v.shape)
    fm = FeatureMatrix.from_array(v.astype(np.float32), GRID, dtype="int8", cube_summary=GEOMETRY)
    s = ClickToMapSession(fm, decision="centroid", kernel="numpy", n_matches=10)
    s.set_threshold(0.5)
    s.add_click(survey((3, 3, 5)))
    r = s.update()
    where = [m.grid_index for m in r.matches]
    in_body = [g for g in where if 2 <= g[0] < 5 and 2 <= g[1] < 5 and 4 <= g[2] < 7]
    in_other = [g for g in where if 8 <= g[0] < 11 and 6 <= g[1] < 9 and 10 <= g[2] < 13]
    in_band = [g for g in where if g[2] == 1]
    assert in_body == [] and len(in_other) == 1 and len(in_band) == 1
    assert set(where[:2]) == {in_other[0], in_band[0]}  # the two other bodies lead the list
    assert np.asarray(r.mask, bool).sum() == 27  # the mask is the clicked body alone


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_export_given_a_cube_path_closes_the_cube_it_opens(tmp_path):
    """`session.export(path, data, cube_path)` opens the cube and closes it again: no descriptor of it is left."""
    from napari_seisfm.cube import Geometry
    from napari_seisfm.io import open_cube
    from napari_seisfm.io.segy import write_segy

    src = write_segy(
        tmp_path / "cube.sgy",
        np.random.default_rng(0).normal(size=(24, 20, 64)),
        Geometry.regular((24, 20, 64), first_inline=100, first_crossline=1000),
    )

    def open_on_cube():  # descriptors and memory maps of the cube's file
        real = os.path.realpath(src)
        fds = sum(1 for fd in Path("/proc/self/fd").iterdir() if os.path.realpath(fd) == real)
        return fds + Path("/proc/self/maps").read_text().count(real)

    session = ClickToMapSession(two_bodies(), decision="centroid", kernel="numpy")
    data = np.random.default_rng(1).random(GRID.shape).astype(np.float32)
    out = session.export(tmp_path / "map.sgy", data, src)
    assert open_on_cube() == 0
    with open_cube(out) as c:  # written on the cube grid
        assert c.shape == (24, 20, 64)
    with open_cube(src) as c:  # the check sees an open cube
        assert open_on_cube() >= 1


def test_a_prepared_session_did_the_first_clicks_one_off_work_and_maps_the_same():
    """The probe's context statistics and background rows are computed when the store is loaded (the dock's
    loading job), not at the first click; the maps are the same as without preparing."""
    plain = ClickToMapSession(two_bodies(), decision="probe", kernel="numpy")
    ready = ClickToMapSession(two_bodies(), decision="probe", kernel="numpy").prepared()
    search = ready._search
    assert search.context and set(search.background.tolist()) <= set(search._rows)  # the background's inputs are in
    for s in (plain, ready):
        s.add_click((2, 2, 2), space="grid")
        s.add_click((9, 9, 9), negative=True, space="grid")
    np.testing.assert_array_equal(plain.compute().score, ready.compute().score)
    assert ClickToMapSession(two_bodies(), decision="centroid", kernel="numpy").prepared()._search.decision == "centroid"
