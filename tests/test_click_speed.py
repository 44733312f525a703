"""Click to map near the memory floor (issue 24) gives what it gave before: the blocked map with the sigmoid in
cache, the labelling of the points above the threshold only and the top matches from one threshold pass, each
against the frozen code of before (tests/click_reference.py). benchmarks/bench_click.py times them."""

from __future__ import annotations

import numpy as np
import pytest
from click_reference import bodies_above as old_bodies_above
from click_reference import compute as old_compute
from click_reference import connected_to as old_connected_to
from click_reference import dots as old_dots
from click_reference import probe_scores as old_probe_scores
from click_reference import top_matches as old_top_matches
from scipy import ndimage

from napari_seisfm.search import CentroidSearch, FeatureMatrix, ProbeSearch, connected_to, threshold_mask
from napari_seisfm.search import kernels as kernels_module
from napari_seisfm.search.centroid import ranked
from napari_seisfm.search.region import Bodies
from napari_seisfm.session import ClickToMapSession
from napari_seisfm.store.grid import GridSpec

GRID = (22, 18, 20)


def smooth_store(dtype="float32", seed=0, dim=8, invalid=True) -> FeatureMatrix:
    """Spatially smooth vectors (so thresholds give bodies of many sizes), some invalid points."""
    rng = np.random.default_rng(seed)
    v = ndimage.gaussian_filter(rng.standard_normal((*GRID, dim)), sigma=(2, 2, 2, 0)).astype(np.float32)
    valid = np.ones(GRID, bool)
    if invalid:
        valid[3, 4:7, :] = False  # a dead trace band
    return FeatureMatrix.from_array(v, GridSpec(GRID, (4, 4, 4)), valid=valid, dtype=dtype)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two label grids (0 = none) split the points into the same regions (label numbers may differ)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return pairs.shape[1] == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


# ---------------------------------------------------------------------- the map
@pytest.mark.parametrize("dtype", ["int8", "float16"])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_blocked_map_equals_the_threaded_map_of_before_bit_for_bit(monkeypatch, dtype, threads):
    monkeypatch.setattr(kernels_module, "BLOCK_ROWS", 1000)  # many blocks, and a short last one
    fm = smooth_store(dtype)
    q = np.random.default_rng(1).standard_normal(fm.dim).astype(np.float32)
    new = fm.dots(q, kernel="simsimd", threads=threads)
    np.testing.assert_array_equal(new, old_dots(fm, q, threads))
    assert np.isnan(new[fm.invalid_index]).all() and np.isfinite(np.delete(new, fm.invalid_index)).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_the_probe_sigmoid_in_cache_equals_the_sigmoid_pass_of_before_bit_for_bit(monkeypatch, threads):
    monkeypatch.setattr(kernels_module, "BLOCK_ROWS", 1000)
    fm = smooth_store("int8")
    probe = ProbeSearch(fm, threads=threads, background=300, context=())  # the plain probe: one dot product
    probe.add((5, 5, 5))
    probe.add((15, 10, 3))
    probe.add((10, 2, 17), negative=True)
    s = probe.scores()
    np.testing.assert_array_equal(s, old_probe_scores(probe, threads))
    assert np.nanmin(s) > 0 and np.nanmax(s) < 1


def test_the_cached_map_is_read_only_so_no_caller_needs_a_copy():
    search = CentroidSearch(smooth_store())
    search.add((5, 5, 5))
    m = search.score_map()
    with pytest.raises(ValueError):
        m[0, 0, 0] = 1.0
    search.add((6, 5, 5))
    assert search.score_map() is not m  # a new map for new clicks: the old result is never changed


# ---------------------------------------------------------------------- bodies
@pytest.mark.parametrize("fraction", [0.002, 0.03, 0.3, 0.9])  # the sparse path and, above DENSE, ndimage's
def test_bodies_over_the_points_above_are_ndimage_regions(fraction):
    rng = np.random.default_rng(int(fraction * 1000))
    field = ndimage.gaussian_filter(rng.standard_normal(GRID), 1.2)
    mask = field >= np.quantile(field, 1 - fraction)
    bodies = Bodies.of_mask(mask)
    ref, n = ndimage.label(mask)
    assert bodies.n == n
    got = np.zeros(mask.size, np.int64)
    got[bodies.index] = bodies.labels
    assert same_partition(got.reshape(GRID), ref)
    # regions touching the grid's faces and edges: a single row along each axis
    line = np.zeros(GRID, bool)
    line[:, 0, -1] = line[-1, :, 0] = line[0, -1, :] = True
    assert Bodies.of_mask(line).n == ndimage.label(line)[1]


def test_bodies_in_two_dimensions_and_empty():
    mask = np.zeros((5, 7), bool)
    mask[0, :3] = mask[2:4, 6] = mask[4, 0] = True
    b = Bodies.of_mask(mask)
    assert b.n == 3 and same_partition(_labels(b), ndimage.label(mask)[0])
    empty = Bodies.of_mask(np.zeros(GRID, bool))
    assert empty.n == 0 and not empty.mask().any() and empty.of_points([(1, 1, 1)]) == set()


def _labels(b: Bodies) -> np.ndarray:
    out = np.zeros(int(np.prod(b.shape)), np.int64)
    out[b.index] = b.labels
    return out.reshape(b.shape)


def test_connected_to_and_threshold_mask_equal_the_whole_grid_labelling():
    fm = smooth_store()
    search = CentroidSearch(fm)
    for p in [(5, 5, 5), (15, 10, 3)]:
        search.add(p)
    score = search.score_map()
    seeds = [(5, 5, 5), (15, 10, 3), (30, 0, 0), (-1, 2, 2)]  # two outside the grid
    for t in (0.2, 0.5, 0.8):
        mask = score >= t
        np.testing.assert_array_equal(connected_to(mask, seeds), old_connected_to(mask, seeds))
        np.testing.assert_array_equal(threshold_mask(score, t, seeds), old_connected_to(mask, seeds))
        np.testing.assert_array_equal(threshold_mask(score, t, seeds, connected=False), mask)


# ---------------------------------------------------------------------- top matches
def test_ranked_is_a_prefix_of_the_total_order_score_then_index():
    rng = np.random.default_rng(4)
    s = rng.integers(0, 40, 5000).astype(np.float32)  # many ties
    s[rng.choice(5000, 50, replace=False)] = np.nan
    order = np.lexsort((np.arange(len(s)), -np.nan_to_num(s, nan=-np.inf)))[: int((~np.isnan(s)).sum())]
    for m in (1, 7, 100, 1000, 4950, 6000):
        r = ranked(s, m)
        assert len(r) >= min(m, 4950)
        np.testing.assert_array_equal(r, order[: len(r)])
        assert len(r) == len(order) or s[order[len(r)]] < s[r[-1]]  # every point of the m-th score is in
    hint = np.flatnonzero(s >= 30)
    np.testing.assert_array_equal(ranked(s, 20, hint=hint), order[: len(ranked(s, 20, hint=hint))])


@pytest.mark.parametrize("decision", [CentroidSearch, ProbeSearch])
@pytest.mark.parametrize("radius,n", [(0, 30), (2, 20), (3, 60)])
def test_top_matches_equal_the_argpartition_matches_of_before(decision, radius, n):
    fm = smooth_store()  # float32: scores without ties, so the order of before is defined
    search = decision(fm) if decision is CentroidSearch else decision(fm, background=300)
    search.add((5, 5, 5))
    search.add((15, 10, 3))
    search.add((10, 2, 17), negative=True)
    s = search.scores()
    best = np.sort(s[np.isfinite(s)])[-2000:]
    assert len(np.unique(best)) == len(best)  # no ties where matches are taken: the order of before is defined
    for exclude in (True, False):
        assert search.top_matches(n, radius=radius, exclude_clicks=exclude) == old_top_matches(
            search, s, n, radius=radius, exclude_clicks=exclude
        )
    score = search.score_map()
    t = float(np.nanquantile(score, 0.9))
    labels, _, clicked = old_bodies_above(score, t, search.positives)
    bodies = Bodies.above(score, t)
    new = search.top_matches(n, radius=radius, bodies=bodies, skip_bodies=bodies.of_points(search.positives))
    old = old_top_matches(search, s, n, radius=radius, bodies=labels, skip_bodies=clicked)
    assert new == old and len(new) > 3
    assert search.top_matches(n, radius=radius, bodies=labels, skip_bodies=clicked) == old  # a label grid still works


@pytest.mark.parametrize("decision", ["probe", "centroid"])
def test_the_session_computes_the_map_mask_and_matches_of_before(decision):
    fm = smooth_store()
    session = ClickToMapSession(fm, decision=decision)
    for p, neg in [((5, 5, 5), False), ((15, 10, 3), False), ((10, 2, 17), True)]:
        session.add_click(p, negative=neg, space="grid")
    r = session.compute()
    search = session._search
    score, mask, matches = old_compute(
        search,
        r.snapshot.positives,
        r.threshold,
        session.n_matches,
        session.match_radius,
        connected=True,
        threads=search.kernel.threads,
    )
    np.testing.assert_array_equal(r.score, score)
    np.testing.assert_array_equal(r.mask, mask)
    assert r.matches == matches
