"""The whole-cube kNN (GEMM + k argmax rounds) against a brute-force reference: exact neighbours in stable
order, the same vote and tie rules, ties and invalid rows included, on every CPU backend."""

import numpy as np
import pytest

from napari_seisfm.search import FeatureMatrix, KnnSegmenter
from napari_seisfm.search.knn import ROUNDS_MAX
from napari_seisfm.store.grid import GridSpec


def reference(vectors, valid, support_flat, support_cls, n_classes, k, weighted, to_cos):
    """Brute force in int64/float64: stable sort of -dot per row, then the documented vote and tie rules."""
    x = vectors.astype(np.float64)
    dots = x @ x[support_flat].T
    k = min(k, len(support_flat))
    order = np.argsort(-dots, axis=1, kind="stable")[:, :k]
    d = np.take_along_axis(dots, order, 1)
    cls = support_cls[order]
    w = 1.0 / (np.maximum(1.0 - d * to_cos, 0.0) + 1e-3) if weighted else np.ones_like(d)
    votes = np.zeros((len(x), n_classes))
    close = np.zeros((len(x), n_classes))
    for j in range(k):
        np.add.at(votes, (np.arange(len(x)), cls[:, j]), w[:, j])
        np.add.at(close, (np.arange(len(x)), cls[:, j]), d[:, j])
    top = np.isclose(votes, votes.max(1, keepdims=True), rtol=1e-6, atol=0) if weighted else votes == votes.max(1, keepdims=True)
    best = np.argmax(np.where(top, close, -np.inf), axis=1)
    probs = votes / votes.sum(1, keepdims=True)
    best[~valid] = -1
    return best, probs


def tied_store(dtype, shape=(9, 10, 11), dim=16, seed=0):
    """Coarse values (many exactly equal dot products), duplicate rows and a few invalid rows."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    v = rng.integers(-3, 4, (n, dim)) * 20
    v[rng.choice(n, n // 4, replace=False)] = v[rng.integers(0, 50, n // 4)]  # exact duplicates
    valid = rng.random(n) > 0.05
    v[~valid] = 0
    v = v.astype(np.int8 if dtype == "int8" else np.float32)  # float32: small integers, exact dot products
    return FeatureMatrix(v, valid, GridSpec(shape, (1, 1, 1)), quant_scale=127.0)


@pytest.mark.parametrize(
    "dtype,backend", [("int8", "auto"), ("int8", "torch-f32"), ("int8", "numpy"), ("float32", "auto"), ("float32", "numpy")]
)
@pytest.mark.parametrize("k", [1, 5, ROUNDS_MAX + 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_knn_equals_brute_force_with_ties_and_invalid_rows(dtype, backend, k, weighted):
    fm = tied_store(dtype)
    rng = np.random.default_rng(1)
    flat = rng.choice(fm.grid.size, 60, replace=False)
    points = np.stack(np.unravel_index(flat, fm.shape), 1)
    labels = rng.integers(1, 5, len(flat))
    seg = KnnSegmenter(fm, points, labels, k=k, weighted=weighted, backend=backend, threads=2, block=64)
    got = seg.segment()

    to_cos = 1.0 / 127**2 if dtype == "int8" else 1.0
    best, probs = reference(fm.vectors, fm.valid, seg.support_flat, seg.support_class, len(seg.class_ids), k, weighted, to_cos)
    ids = np.asarray(seg.class_ids)
    want = np.where(best >= 0, ids[np.maximum(best, 0)], 0)
    classes = got.classes.reshape(-1)
    assert (classes == 0).sum() == (~fm.valid).sum()
    assert np.array_equal(classes, want)
    p = got.probabilities.reshape(fm.grid.size, -1)
    np.testing.assert_allclose(p[fm.valid], probs[fm.valid], rtol=1e-5, atol=1e-6)
    assert np.all(p[~fm.valid] == 0)
    conf = got.confidence.reshape(-1)
    assert np.isnan(conf[~fm.valid]).all()
    np.testing.assert_allclose(conf[fm.valid], probs[fm.valid, best[fm.valid]], rtol=1e-5)


def test_ties_at_the_kth_neighbour_keep_the_support_order():
    """Every support vector equal: the k neighbours are the first k support points, whatever the backend."""
    shape = (4, 4, 4)
    v = np.full((64, 8), 10, np.int8)
    fm = FeatureMatrix(v, np.ones(64, bool), GridSpec(shape, (1, 1, 1)))
    points = np.stack(np.unravel_index(np.arange(10), shape), 1)
    labels = np.array([2, 2, 1, 1, 1, 1, 1, 1, 1, 1])  # first three neighbours: 2, 2, 1 -> class 2 wins 2:1
    for backend in ("auto", "torch-f32", "numpy"):
        seg = KnnSegmenter(fm, points, labels, k=3, backend=backend)
        assert (seg.segment().classes == 2).all(), backend


def test_scattered_points_and_slices_equal_the_whole_grid():
    """classify() on gathered (non-contiguous) indices and segment_slice() agree with segment()."""
    fm = tied_store("int8", seed=3)
    rng = np.random.default_rng(2)
    flat = rng.choice(fm.grid.size, 40, replace=False)
    seg = KnnSegmenter(fm, np.stack(np.unravel_index(flat, fm.shape), 1), rng.integers(1, 4, 40), k=5, block=32)
    whole = seg.segment()
    pick = rng.permutation(fm.grid.size)[:300]
    c, p, _ = seg.classify(pick)
    assert np.array_equal(c, whole.classes.reshape(-1)[pick])
    sl = seg.segment_slice(1, 4)
    assert np.array_equal(sl.classes, whole.classes[:, 4, :])


@pytest.mark.parametrize("dtype,backend", [("int8", "auto"), ("int8", "numpy"), ("float32", "auto")])
@pytest.mark.parametrize("k", [1, 5])
def test_blocks_split_into_cache_sized_passes_give_the_same_neighbours(dtype, backend, k):
    """GEMM + rounds per ``sub`` rows of a block (issue 24), a short last pass included: the brute-force classes,
    and the same classes, probabilities and confidence as whole-block passes."""
    fm = tied_store(dtype)
    rng = np.random.default_rng(2)
    flat = rng.choice(fm.grid.size, 60, replace=False)
    points = np.stack(np.unravel_index(flat, fm.shape), 1)
    labels = rng.integers(1, 5, len(flat))
    seg = KnnSegmenter(fm, points, labels, k=k, backend=backend, threads=2, block=200)
    seg.sub = 48  # 200 = 4 x 48 + 8
    split = seg.segment()
    seg.sub = 0
    whole = seg.segment()
    for a, b in zip(
        (split.classes, split.probabilities, split.confidence), (whole.classes, whole.probabilities, whole.confidence)
    ):
        np.testing.assert_array_equal(a, b)
    best, _ = reference(
        fm.vectors,
        fm.valid,
        seg.support_flat,
        seg.support_class,
        len(seg.class_ids),
        k,
        False,
        1.0 / 127**2 if dtype == "int8" else 1.0,
    )
    ids = np.asarray(seg.class_ids)
    assert np.array_equal(split.classes.reshape(-1), np.where(best >= 0, ids[np.maximum(best, 0)], 0))
