"""Click-to-map engine: kernels vs the numpy float32 reference, clicks, top matches, kNN, CLI twins."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.errors import SeisfmError
from napari_seisfm.search import (
    CentroidSearch,
    FeatureMatrix,
    KnnSegmenter,
    LinearSegmenter,
    support_from_labels,
    support_from_points,
)
from napari_seisfm.search.kernels import DotKernel, available
from napari_seisfm.store.grid import GridSpec
from napari_seisfm.store.volume import FeatureVolume

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

GRID = (12, 10, 16)
STRIDE = (2, 2, 4)
GEOMETRY = {
    "shape": [24, 20, 64],
    "ilines": [100, 123, 1],
    "xlines": [1000, 1038, 2],
    "samples": [0, 252, 4],
    "sample_unit": "ms",
    "fingerprint": "abc123",
    "source": "synthetic.sgy",
}


def structured(grid=GRID, dim=32, seed=0, n_centres=6):
    """Random-but-structured vectors: a few cluster centres laid out in blocks along time, plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim))
    region = (np.arange(grid[2]) * n_centres // grid[2])[None, None, :] + np.zeros(grid, int)
    v = centres[region] + 0.6 * rng.standard_normal((*grid, dim))
    return v.astype(np.float32), region


def make_store(path, vectors, *, dtype="int8", grid=GRID, valid=None, fingerprint="abc123"):
    fv = FeatureVolume.create(
        path,
        grid=GridSpec(grid, STRIDE),
        dim_in=vectors.shape[-1],
        dtype=dtype,
        model="test",
        cube_fingerprint=fingerprint,
        cube_summary=GEOMETRY,
        chunks=(8, 8, 8),
    )
    for idx, sl in fv.chunk_slices():
        fv.write_chunk(idx, vectors[sl], None if valid is None else valid[sl])
    fv.mark_complete()
    return path


@pytest.fixture(scope="module")
def vectors():
    return structured()[0]


@pytest.fixture(scope="module", params=["int8", "float16", "float32"])
def fm(request, tmp_path_factory, vectors):
    path = make_store(tmp_path_factory.mktemp("fv") / f"f_{request.param}.zarr", vectors, dtype=request.param)
    return FeatureMatrix.open(path)


def reference(fm: FeatureMatrix, query) -> np.ndarray:
    out = fm.decode(fm.vectors) @ np.asarray(query, np.float32)
    out[~fm.valid] = np.nan
    return out


def top_agreement(a, b, frac=0.01):
    k = max(1, int(round(frac * a.size)))
    ta = set(np.argsort(-np.nan_to_num(a.ravel(), nan=-9))[:k])
    tb = set(np.argsort(-np.nan_to_num(b.ravel(), nan=-9))[:k])
    return len(ta & tb) / k


# ---------------------------------------------------------------- kernels
@pytest.mark.parametrize("kernel", ["simsimd", "numkong", "numpy"])
@pytest.mark.parametrize("dtype", ["int8", "float16", "float32"])
def test_kernels_match_float32_reference(dtype, kernel):
    if not available(kernel):
        pytest.skip(f"{kernel} not installed")
    v, _ = structured(grid=(40, 40, 40), dim=64, seed=7, n_centres=8)
    fm = FeatureMatrix.from_array(v, (40, 40, 40), dtype=dtype)
    k = DotKernel(fm.vectors, quant_scale=fm.quant_scale, kernel=kernel, threads=2)
    for pos, neg in [([(3, 3, 3)], []), ([(5, 30, 12), (20, 2, 14)], [(30, 30, 35)])]:
        cs = CentroidSearch(fm)
        cs.set_clicks(pos, neg)
        q = cs.query()
        got, ref = k(q), reference(fm, q)
        tol = k.query_error(q) + (2e-3 if dtype == "float16" else 1e-5)
        assert np.abs(got - ref).max() <= tol
        assert top_agreement(got, ref) >= 0.99


def test_int8_query_error_is_small_and_bounded(fm):
    if fm.dtype != "int8":
        pytest.skip("int8 only")
    cs = CentroidSearch(fm)
    cs.add((3, 3, 3))
    cs.add((6, 4, 12), negative=True)
    err = np.abs(cs.scores() - reference(fm, cs.query()))
    assert np.nanmax(err) <= cs.query_error() + 1e-6
    assert cs.query_error() < 0.05  # docs/search.md: ~0.5 sqrt(dim) / scale


# ---------------------------------------------------------------- centroid search
def test_click_update_equals_recompute(fm):
    a = CentroidSearch(fm)
    a.add((1, 1, 1))
    a.score_map()
    a.add((2, 3, 4))
    a.add((5, 5, 10), negative=True)
    a.add((7, 2, 2))
    a.score_map()
    a.remove((7, 2, 2))
    b = CentroidSearch(fm)
    b.set_clicks([(1, 1, 1), (2, 3, 4)], [(5, 5, 10)])
    np.testing.assert_allclose(a.score_map(), b.score_map(), atol=1e-6)
    c = fm.decode(fm.vectors)
    q = (c[fm.flat((1, 1, 1))] + c[fm.flat((2, 3, 4))]) / 2 - c[fm.flat((5, 5, 10))]  # mean similarity, +/-
    np.testing.assert_allclose(b.query(), q, atol=1e-6)
    assert a.pop(negative=True) == (5, 5, 10) and a.negatives == []


def test_no_negative_is_mean_cosine_to_the_positives(fm):
    cs = CentroidSearch(fm)
    cs.add((0, 0, 0))
    v = fm.vector((0, 0, 0))
    np.testing.assert_allclose(cs.query(), v, atol=1e-6)
    cs.add((3, 4, 5))
    w = fm.vector((3, 4, 5))
    np.testing.assert_allclose(cs.query(), (v + w) / 2, atol=1e-6)
    x = fm.decode(fm.vectors)
    np.testing.assert_allclose(cs.scores(), (x @ v + x @ w) / 2, atol=0.02)  # the mean of the two cosine maps


def test_negatives_lower_the_score_near_them(fm):
    cs = CentroidSearch(fm)
    cs.add((2, 2, 1))  # time block 0
    before = cs.score_map().copy()
    cs.add((8, 6, 14), negative=True)  # time block 5
    after = cs.score_map()
    near = (slice(6, 11), slice(4, 9), slice(13, 16))
    drop = before[near] - after[near]
    assert np.nanmean(drop) > 0.3
    assert np.nanmean(drop) > np.nanmean(before[:, :, :3] - after[:, :, :3]) + 0.2


def test_no_positive_is_an_error(fm):
    cs = CentroidSearch(fm)
    with pytest.raises(SeisfmError, match="add a positive click first"):
        cs.score_map()
    cs.add((1, 1, 1), negative=True)
    with pytest.raises(SeisfmError, match="add a positive click first"):
        cs.scores()


def test_out_of_volume_clicks_are_refused(fm):
    cs = CentroidSearch(fm)
    with pytest.raises(SeisfmError, match=r"outside the feature grid: valid 0..\(11, 9, 15\)"):
        cs.add((12, 0, 0))
    with pytest.raises(SeisfmError, match="outside the volume"):
        cs.add((0, 0, 70), space="cube")
    with pytest.raises(SeisfmError, match=r"crossline 997 not in 1000..1038"):
        cs.add((100, 997, 0), space="survey")
    assert cs.positives == []
    # survey and cube coordinates snap to the nearest grid point
    assert cs.add((105, 1010, 40), space="survey") == (2, 2, 2)
    assert cs.add((5, 5, 41), space="cube") == (2, 2, 10)


def test_geometry_survey_to_index_and_back():
    from napari_seisfm.cube import geometry_from_summary

    g = geometry_from_summary(GEOMETRY)
    np.testing.assert_allclose(g.to_index((110, 1004, 8)), [10, 2, 2])
    assert g.to_survey((10, 2, 2)) == (110, 1004, 8)
    np.testing.assert_allclose(g.to_index((123.4, 1038.9, 253.9)), [23, 19, 63])  # half a step out still snaps on
    with pytest.raises(SeisfmError, match="time 300 not in 0..252 ms"):
        g.to_index((110, 1004, 300))
    with pytest.raises(SeisfmError, match="no usable cube geometry"):
        FeatureMatrix.from_array(np.ones((2, 2, 2, 4), np.float32), (2, 2, 2)).to_grid((1, 2, 3), "survey")


def test_nan_and_invalid_vectors_are_masked(tmp_path, vectors):
    v = vectors.copy()
    v[3, 4, 5] = np.nan
    dead = np.ones(GRID, bool)
    dead[0, 0, :] = False
    fm = FeatureMatrix.open(make_store(tmp_path / "nan.zarr", v, valid=dead))
    cs = CentroidSearch(fm)
    cs.add((3, 4, 6))
    m = cs.score_map()
    assert np.isnan(m[3, 4, 5]) and np.isnan(m[0, 0]).all()
    assert np.isfinite(m).sum() == m.size - 1 - GRID[2]
    assert all(np.isfinite(x.score) and x.grid_index != (3, 4, 5) for x in cs.top_matches(50, radius=0))
    with pytest.raises(SeisfmError, match="no valid embedding"):
        cs.add((3, 4, 5))
    # in-memory arrays too
    fa = FeatureMatrix.from_array(v, GRID, dtype="int8")
    assert not fa.valid[fa.flat((3, 4, 5))] and fa.valid.sum() == fa.grid.size - 1


def test_top_matches_are_ranked_and_suppressed(fm):
    cs = CentroidSearch(fm)
    cs.add((2, 2, 1))
    s = cs.score_map()
    matches = cs.top_matches(8, radius=2)
    assert [m.rank for m in matches] == list(range(1, 9))
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    for i, a in enumerate(matches):
        assert np.isclose(a.score, s[a.grid_index])
        assert max(abs(x - y) for x, y in zip(a.grid_index, (2, 2, 1))) > 2  # away from the click
        assert a.cube_index == tuple(np.asarray(a.grid_index) * STRIDE)
        for b in matches[:i]:
            assert max(abs(x - y) for x, y in zip(a.grid_index, b.grid_index)) > 2
    assert matches[0].survey == (
        100 + matches[0].cube_index[0],
        1000 + 2 * matches[0].cube_index[1],
        4 * matches[0].cube_index[2],
    )
    # without suppression and exclusion the first row is the global maximum
    assert np.isclose(cs.top_matches(1, radius=0, exclude_clicks=False)[0].score, np.nanmax(s))


def test_fingerprint_mismatch_refused(tmp_path, vectors):
    path = make_store(tmp_path / "f.zarr", vectors)
    with pytest.raises(SeisfmError, match="another cube"):
        FeatureMatrix.open(path, fingerprint="ffff0000")
    assert FeatureMatrix.open(path, fingerprint="abc123").grid.shape == GRID


# ---------------------------------------------------------------- kNN
def clusters(dtype="int8", seed=3):
    """Three well-separated classes by time block, 4 labelled points each."""
    rng = np.random.default_rng(seed)
    grid = (10, 10, 12)
    centres = np.eye(3, 24) * 3
    truth = np.repeat(np.arange(3), 4)[None, None, :] + np.zeros(grid, int)
    v = centres[truth] + 0.4 * rng.standard_normal((*grid, 24))
    fm = FeatureMatrix.from_array(v.astype(np.float32), grid, dtype=dtype)
    pts = np.array([(i, j, t) for t in (0, 5, 9) for i, j in ((1, 1), (8, 2), (4, 7), (6, 6))])
    cls = truth[tuple(pts.T)] + 1
    return fm, pts, cls, truth + 1


@pytest.mark.parametrize("dtype", ["int8", "float16", "float32"])
def test_knn_separable_clusters(dtype):
    fm, pts, cls, truth = clusters(dtype)
    seg = KnnSegmenter(fm, pts, cls, k=5)
    r = seg.segment()
    assert r.class_ids == (1, 2, 3)
    assert (r.classes == truth).mean() > 0.99
    np.testing.assert_allclose(r.probabilities.sum(-1), 1, atol=1e-6)
    assert np.all((r.confidence >= 0.6) & (r.confidence <= 1))
    np.testing.assert_allclose(r.confidence, r.probabilities.max(-1))
    # the slice shown first equals the same slice of the whole-cube run
    s = seg.segment_slice(0, 4)
    assert s.classes.shape == (10, 12)
    np.testing.assert_array_equal(s.classes, r.classes[4])
    np.testing.assert_allclose(s.probabilities, r.probabilities[4])


def knn_reference(fm, pts, cls, k, weighted=False, rows=None):
    """Brute-force float32 kNN: sims of the stored values, stable sort, votes, tie rule of docs/search.md.

    int8 stores: the products of the stored integers (exact in float32), so ties are real ties.
    """
    x = fm.vectors.astype(np.float32) if rows is None else fm.vectors[rows].astype(np.float32)
    flat = np.ravel_multi_index(tuple(np.asarray(pts).T), fm.shape)
    keep = fm.valid[flat] & (np.asarray(cls) > 0)
    flat, cls = flat[keep], np.asarray(cls)[keep]
    ids = np.unique(cls)
    sims = x @ fm.vectors[flat].astype(np.float32).T
    k = min(k, len(flat))
    nn = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    cos = np.take_along_axis(sims, nn, 1) / (fm.quant_scale**2 if fm.dtype == "int8" else 1.0)
    w = 1.0 / (np.maximum(1.0 - cos, 0) + 1e-3) if weighted else np.ones_like(cos)
    c = np.searchsorted(ids, cls[nn])
    votes = np.stack([(w * (c == j)).sum(1) for j in range(len(ids))], 1)
    raw = np.take_along_axis(sims, nn, 1).astype(np.float64)
    close = np.stack([(raw * (c == j)).sum(1) for j in range(len(ids))], 1)
    best = np.argmax(np.where(votes == votes.max(1, keepdims=True), close, -np.inf), 1)
    probs = votes / votes.sum(1, keepdims=True)
    valid = fm.valid if rows is None else fm.valid[rows]
    classes = np.where(valid, ids[best], 0)
    probs[~valid] = 0
    conf = np.where(valid, probs[np.arange(len(best)), best], np.nan)
    # margin between the k-th and (k+1)-th similarity: float stores may order razor-thin gaps differently
    srt = -np.sort(-sims, axis=1)
    margin = srt[:, k - 1] - srt[:, k] if k < sims.shape[1] else np.full(len(sims), np.inf)
    return classes, probs, conf, margin


def random_support(fm, n, n_classes, seed):
    rng = np.random.default_rng(seed)
    flat = rng.choice(fm.grid.size, n, replace=False)
    cls = rng.integers(1, n_classes + 1, n)
    cls[:n_classes] = np.arange(1, n_classes + 1)
    return np.stack(np.unravel_index(flat, fm.shape), 1), cls


@pytest.mark.parametrize("dtype", ["int8", "float16", "float32"])
@pytest.mark.parametrize("data", ["random", "clustered"])
@pytest.mark.parametrize("weighted", [False, True])
def test_knn_equals_bruteforce_reference(dtype, data, weighted):
    grid = (16, 16, 20)
    if data == "random":
        v = np.random.default_rng(11).standard_normal((*grid, 64)).astype(np.float32)
    else:
        v, _ = structured(grid=grid, dim=64, seed=4, n_centres=6)
    valid = np.ones(grid, bool)
    valid[3, :, 5] = False  # dead trace: class 0, NaN confidence
    fm = FeatureMatrix.from_array(v, grid, dtype=dtype, valid=valid)
    pts, cls = random_support(fm, 150, 4, seed=2)
    seg = KnnSegmenter(fm, pts, cls, k=5, weighted=weighted, threads=2, block=256)  # several blocks per worker
    r = seg.segment()
    ref_c, ref_p, ref_f, margin = knn_reference(fm, pts, cls, 5, weighted)
    sure = margin > (0 if dtype == "int8" else 1e-5)  # int8: exact integers, every point must agree
    assert sure.mean() > 0.99
    got_c, got_p, got_f = r.classes.reshape(-1), r.probabilities.reshape(-1, 4), r.confidence.reshape(-1)
    np.testing.assert_array_equal(got_c[sure], ref_c[sure])
    np.testing.assert_allclose(got_p[sure], ref_p[sure], atol=1e-5)
    np.testing.assert_allclose(got_f[sure], ref_f[sure], atol=1e-5)
    assert (r.classes[3, :, 5] == 0).all() and np.isnan(r.confidence[3, :, 5]).all()
    assert (r.probabilities[3, :, 5] == 0).all()
    # arbitrary (gathered, unordered) indices give the same rows as the whole-grid run
    rows = np.random.default_rng(0).permutation(fm.grid.size)[:700]
    c, p, f = seg.classify(rows)
    np.testing.assert_array_equal(c, got_c[rows])
    np.testing.assert_array_equal(p, got_p[rows])


@pytest.mark.parametrize("backend", ["onednn-int8", pytest.param("torch-f32", marks=pytest.mark.extra("torch"))])
def test_knn_int8_backends_exact_with_ties(backend):
    """Duplicate support vectors and coarse int8 values make equal similarities common: stable order wins."""
    from napari_seisfm.search.kernels import onednn_int8_available

    if backend == "onednn-int8" and not onednn_int8_available():
        pytest.skip("oneDNN int8 matmul not available or not exact here")
    grid = (12, 12, 12)
    rng = np.random.default_rng(5)
    v = rng.integers(-2, 3, (*grid, 16)).astype(np.int8)  # few distinct values: many exact ties
    fm = FeatureMatrix.from_array(v, grid, quant_scale=2.0, valid=np.abs(v).sum(-1) > 0)
    pts, cls = random_support(fm, 60, 3, seed=1)
    pts = np.concatenate([pts, pts[:10]])  # the same grid points again: identical vectors, other classes
    cls = np.concatenate([cls, (cls[:10] % 3) + 1])
    for k in (1, 4, 5, 7):
        seg = KnnSegmenter(fm, pts, cls, k=k, backend=backend, threads=1, block=500)
        assert seg.backend == backend
        ref_c, ref_p, ref_f, margin = knn_reference(fm, pts, cls, k)
        assert (margin == 0).mean() > 0.05  # the tie path is really exercised
        c, p, f = seg.classify(np.arange(fm.grid.size))
        np.testing.assert_array_equal(c, ref_c)
        np.testing.assert_allclose(p, ref_p, atol=1e-6)
        np.testing.assert_allclose(f, ref_f, atol=1e-6)


def test_knn_vote_ties_go_to_the_closer_class():
    """Two painted points per class, k=5 -> k=4: a 2-2 vote must not always give class 1."""
    grid = (1, 1, 40)
    t = np.linspace(0, 1, 40)
    v = np.stack([np.cos(t * np.pi / 2), np.sin(t * np.pi / 2), np.zeros(40)], -1).reshape(*grid, 3)
    fm = FeatureMatrix.from_array(v.astype(np.float32), grid, dtype="float32")
    pts = [(0, 0, 0), (0, 0, 2), (0, 0, 37), (0, 0, 39)]
    seg = KnnSegmenter(fm, pts, [1, 1, 2, 2], k=5)
    assert seg.k_used == 4
    r = seg.segment()
    np.testing.assert_allclose(r.probabilities, 0.5)  # every vote is 2-2 ...
    assert (r.classes[0, 0, :19] == 1).all() and (r.classes[0, 0, 21:] == 2).all()  # ... the closer pair wins
    # an exact tie in votes and summed similarity falls back to the smaller class id
    sym = FeatureMatrix.from_array(np.array([[1, 0], [0, 1], [1, 1]], np.float32).reshape(1, 1, 3, 2), (1, 1, 3))
    r = KnnSegmenter(sym, [(0, 0, 1), (0, 0, 0)], [2, 1], k=2).segment()
    assert r.classes[0, 0, 2] == 1 and r.classes[0, 0, 1] == 2 and r.classes[0, 0, 0] == 1


def test_knn_weighted_option():
    fm, pts, cls, truth = clusters()
    seg = KnnSegmenter(fm, pts, cls, k=12, weighted=False)
    segw = KnnSegmenter(fm, pts, cls, k=12, weighted=True)
    r, rw = seg.segment(), segw.segment()
    # k = all support points: plain votes are the class fractions everywhere, weighted ones follow distance
    np.testing.assert_allclose(r.probabilities, 1 / 3, atol=1e-6)
    assert (rw.classes == truth).mean() > 0.99
    np.testing.assert_allclose(rw.probabilities.sum(-1), 1, atol=1e-5)
    assert rw.confidence.min() > 1 / 3


def test_knn_one_class_is_an_error():
    fm, pts, cls, _ = clusters()
    with pytest.raises(SeisfmError, match="label at least two classes"):
        KnnSegmenter(fm, pts, np.ones_like(cls))
    with pytest.raises(SeisfmError, match="label at least two classes"):
        KnnSegmenter(fm, pts, np.zeros_like(cls))


def test_knn_cancel_and_progress():
    from napari_seisfm.errors import SeisfmCancelled

    fm, pts, cls, _ = clusters()
    seg = KnnSegmenter(fm, pts, cls)
    seen = []
    seg.segment(batch=300, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (1200, 1200) and len(seen) == 4
    with pytest.raises(SeisfmCancelled):
        seg.segment(batch=300, cancel=lambda: len(seen) > 4, progress=lambda d, t: seen.append(d))


def test_support_from_labels_feature_and_cube_grid():
    grid = GridSpec((4, 5, 6), (2, 2, 4))
    lab = np.zeros((4, 5, 6), np.uint8)
    lab[1, 2, 3] = 2
    lab[0, 0, 0] = 1
    pts, cls = support_from_labels(lab, grid)
    assert sorted(zip(map(tuple, pts), cls)) == [((0, 0, 0), 1), ((1, 2, 3), 2)]
    cube = np.zeros((8, 10, 24), np.int16)
    cube[2, 4, 12] = 3  # grid point (1, 2, 3)
    cube[2, 4, 13] = 3
    cube[3, 4, 12] = 1  # snaps to (2, 2, 3) (round half to even: 1.5 -> 2)
    cube[7, 9, 23] = 1  # snaps to the last grid point
    pts, cls = support_from_labels(cube, grid, cube_shape=(8, 10, 24))
    got = dict(zip(map(tuple, pts), cls))
    assert got[(1, 2, 3)] == 3 and got[(3, 4, 5)] == 1 and len(got) == 3
    with pytest.raises(SeisfmError, match="neither the feature grid"):
        support_from_labels(np.zeros((3, 3, 3), int), grid)


def test_support_from_points_survey(fm):
    pts, cls = support_from_points(fm, [(100, 1000, 0), (111, 1020, 100)], [1, 2], space="survey")
    assert [tuple(p) for p in pts] == [(0, 0, 0), (6, 5, 6)] and list(cls) == [1, 2]
    with pytest.raises(SeisfmError, match="outside the volume"):
        support_from_points(fm, [(99, 1000, 0)], [1], space="survey")


# ---------------------------------------------------------------- CLI twins
def test_cli_search_equals_api(tmp_path, vectors, capsys):
    path = make_store(tmp_path / "f.zarr", vectors)
    out = tmp_path / "map.npy"
    rc = cli(
        [
            "search",
            str(path),
            "--pos",
            "104,1008,20",
            "--pos",
            "110,1000,60",
            "--neg",
            "120,1030,240",
            "--out",
            str(out),
            "--top",
            "5",
            "--decision",
            "centroid",
        ]
    )
    assert rc == 0
    cs = CentroidSearch(FeatureMatrix.open(path))
    cs.set_clicks([(104, 1008, 20), (110, 1000, 60)], [(120, 1030, 240)], space="survey")
    np.testing.assert_array_equal(np.load(out), cs.score_map())
    text = capsys.readouterr().out
    assert '"rank": 5' in text and "inline" in text
    assert cli(["search", str(path), "--neg", "104,1008,20", "--out", str(out)]) == 2
    assert "add a positive click first" in capsys.readouterr().err
    assert cli(["search", str(path), "--pos", "104,1008,2000", "--out", str(out)]) == 2
    assert "outside the volume" in capsys.readouterr().err
    assert cli(["search", str(path), "--pos", "1,1,1", "--coords", "grid", "--out", str(tmp_path / "m.sgy")]) == 2
    assert "needs the cube" in capsys.readouterr().err


def test_cli_segment_equals_api(tmp_path, capsys):
    v, region = structured(seed=5)
    path = make_store(tmp_path / "f.zarr", v)
    fm = FeatureMatrix.open(path)
    lab = np.zeros(GRID, np.int32)
    lab[2, 2, [0, 1, 14, 15]] = [1, 1, 2, 2]
    lab[9, 7, [0, 6, 15]] = [1, 3, 2]
    lab[9, 8, 6] = 3  # a class with a single point is refused (tested below)
    np.save(tmp_path / "lab.npy", lab)
    out = tmp_path / "cls.npy"
    assert (
        cli(
            [
                "segment",
                str(path),
                "--labels",
                str(tmp_path / "lab.npy"),
                "--method",
                "knn",
                "--k",
                "3",
                "--out",
                str(out),
                "--probabilities",
                str(tmp_path / "p.npy"),
            ]
        )
        == 0
    )
    pts, cls = support_from_labels(lab, fm.grid)
    r = KnnSegmenter(fm, pts, cls, k=3).segment()
    np.testing.assert_array_equal(np.load(out), r.classes)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), r.probabilities)
    # the same labels on the cube grid and as a CSV of survey points give the same support set
    cube_lab = np.zeros(GEOMETRY["shape"], np.int32)
    cube_lab[tuple((pts * STRIDE).T)] = cls
    np.save(tmp_path / "cube_lab.npy", cube_lab)
    csv = tmp_path / "lab.csv"
    csv.write_text(
        "il,xl,t,class\n" + "".join(f"{100 + c[0]},{1000 + 2 * c[1]},{4 * c[2]},{k}\n" for c, k in zip(pts * STRIDE, cls))
    )
    for f in (tmp_path / "cube_lab.npy", csv):
        assert (
            cli(["segment", str(path), "--labels", str(f), "--method", "knn", "--k", "3", "--out", str(tmp_path / "c2.npy")]) == 0
        )
        np.testing.assert_array_equal(np.load(tmp_path / "c2.npy"), r.classes)
    one = np.zeros(GRID, np.int32)
    one[1, 1, 1] = one[2, 2, 2] = 4
    np.save(tmp_path / "one.npy", one)
    capsys.readouterr()
    assert cli(["segment", str(path), "--labels", str(tmp_path / "one.npy"), "--out", str(out)]) == 2
    assert "label at least two classes" in capsys.readouterr().err
    csv.write_text("1,2,x,1\n1,2,3,4\n")
    assert cli(["segment", str(path), "--labels", str(csv), "--coords", "grid", "--out", str(out)]) == 2


def test_cli_refuses_features_of_another_cube(tmp_path, vectors, capsys):
    from napari_seisfm.cube import geometry_from_summary

    path = make_store(tmp_path / "f.zarr", vectors, fingerprint="not-this-one")
    geo = geometry_from_summary(GEOMETRY)
    cube_path = tmp_path / "cube.npy"
    from napari_seisfm.io.npy import write_npy

    write_npy(cube_path, np.zeros(GEOMETRY["shape"], np.float32), geo)
    assert cli(["search", str(path), "--pos", "104,1008,20", "--cube", str(cube_path), "--out", str(tmp_path / "m.npy")]) == 2
    assert "another cube" in capsys.readouterr().err
    # a store of this cube is accepted, and SEG-Y-less full-resolution export works through the cube
    good = make_store(tmp_path / "g.zarr", vectors, fingerprint=geo.fingerprint())
    assert (
        cli(
            [
                "search",
                str(good),
                "--pos",
                "104,1008,20",
                "--cube",
                str(cube_path),
                "--full-resolution",
                "--out",
                str(tmp_path / "m.npy"),
                "--top",
                "0",
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "m.npy").shape == tuple(GEOMETRY["shape"])


def test_cli_segment_methods_and_bad_labels(tmp_path, capsys):
    v, region = structured(seed=6)
    valid = np.ones(GRID, bool)
    valid[5, 5, :] = False  # a dead trace
    path = make_store(tmp_path / "f.zarr", v, valid=valid)
    fm = FeatureMatrix.open(path)
    lab = np.zeros(GRID, np.int32)
    lab[2, 2, [0, 1, 2, 14, 15]] = [1, 1, 1, 2, 2]
    lab[9, 7, [0, 1, 12, 13]] = [1, 1, 2, 2]
    np.save(tmp_path / "lab.npy", lab)
    out = tmp_path / "cls.npy"
    # the default method is the linear segmenter, with the same classes as the API's
    assert (
        cli(
            [
                "segment",
                str(path),
                "--labels",
                str(tmp_path / "lab.npy"),
                "--out",
                str(out),
                "--probabilities",
                str(tmp_path / "p.npy"),
                "--smooth",
                "1.5",
            ]
        )
        == 0
    )
    assert "linear (smooth 1.5, context 1.5,3,6,12)" in capsys.readouterr().out
    pts, cls = support_from_labels(lab, fm.grid)
    r = LinearSegmenter(fm, pts, cls, smooth=1.5).segment()
    np.testing.assert_array_equal(np.load(out), r.classes)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), r.probabilities)
    assert (np.load(out)[5, 5] == 0).all()  # no class on the dead trace
    err = lambda: capsys.readouterr().err  # noqa: E731

    def bad(labels):
        np.save(tmp_path / "bad.npy", labels)
        return cli(["segment", str(path), "--labels", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "b.npy")])

    one = np.zeros(GRID, np.int32)
    one[1, 1, 1:4] = 3
    assert bad(one) == 2 and "label at least two classes" in err()
    single = lab.copy()
    single[4, 4, 4] = 7
    assert bad(single) == 2 and "class 7 has a single labelled point" in err()
    dead = lab.copy()
    dead[lab == 2] = 0
    dead[5, 5, 3:6] = 2  # every class-2 point on the dead trace
    assert bad(dead) == 2 and "dead traces" in err()
    partly = lab.copy()
    partly[5, 5, 7] = 2
    assert bad(partly) == 0 and "1 labelled point(s) on dead traces" in capsys.readouterr().out
    (tmp_path / "adir").mkdir()
    assert (
        cli(
            [
                "segment",
                str(path),
                "--labels",
                str(tmp_path / "lab.npy"),
                "--out",
                str(out),
                "--probabilities",
                str(tmp_path / "adir"),
            ]
        )
        == 2
    )
    assert "probabilities are written as .npy" in err()
    (tmp_path / "bdir.npy").mkdir()
    assert (
        cli(
            [
                "segment",
                str(path),
                "--labels",
                str(tmp_path / "lab.npy"),
                "--out",
                str(out),
                "--probabilities",
                str(tmp_path / "bdir.npy"),
            ]
        )
        == 2
    )
    assert "is not a file" in err()
    assert cli(["segment", str(path), "--labels", str(tmp_path / "lab.npy"), "--out", str(out), "--probabilities", str(out)]) == 2
    assert "would overwrite" in err()
    assert cli(["segment", str(path), "--labels", str(tmp_path / "lab.npy"), "--out", str(out), "--context", "none"]) == 0
    np.testing.assert_array_equal(np.load(out), LinearSegmenter(fm, pts, cls, context=()).segment().classes)
    assert cli(["segment", str(path), "--labels", str(tmp_path / "lab.npy"), "--out", str(out), "--context", "2,x"]) == 2
    assert "--context" in err()
    assert (
        cli(["segment", str(path), "--labels", str(tmp_path / "lab.npy"), "--out", str(out), "--method", "knn", "--k", "50"]) == 2
    )
    assert "--k 50 is larger than the 9 labelled points" in err()
    with pytest.raises(SystemExit) as exc:
        cli(["segment", str(path), "--labels", str(tmp_path / "lab.npy"), "--out", str(out), "--method", "svm"])
    assert exc.value.code == 2 and "invalid choice: 'svm'" in err()


def test_cli_search_decisions_and_mask(tmp_path, capsys):
    from napari_seisfm.search import ProbeSearch, connected_to

    v, region = structured(seed=7)
    path = make_store(tmp_path / "f.zarr", v)
    fm = FeatureMatrix.open(path)
    out, mask = tmp_path / "m.npy", tmp_path / "mask.npy"
    base = ["search", str(path), "--coords", "grid", "--pos", "3,3,2", "--neg", "8,8,14", "--out", str(out), "--top", "3"]
    assert cli(base + ["--mask", str(mask)]) == 0
    probe = ProbeSearch(fm)
    probe.set_clicks([(3, 3, 2)], [(8, 8, 14)])
    np.testing.assert_array_equal(np.load(out), probe.score_map())
    np.testing.assert_array_equal(np.load(mask), connected_to(probe.score_map() >= 0.5, [(3, 3, 2)]).astype(np.uint8))
    assert cli(base + ["--mask", str(mask), "--all-bodies", "--threshold", "0.7"]) == 0
    np.testing.assert_array_equal(np.load(mask), (probe.score_map() >= 0.7).astype(np.uint8))
    assert cli(base + ["--decision", "centroid"]) == 0
    centroid = CentroidSearch(fm)
    centroid.set_clicks([(3, 3, 2)], [(8, 8, 14)])
    np.testing.assert_array_equal(np.load(out), centroid.score_map())
    capsys.readouterr()
    assert cli(base + ["--top", "-5"]) == 2 and "--top must be 0 or more" in capsys.readouterr().err
    assert cli(base + ["--radius", "-3"]) == 2 and "--radius must be 0 or more" in capsys.readouterr().err
