"""Unsupervised facies (k-means): recovery of separated clusters, reproducibility, the ARI, the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.errors import SeisfmCancelled, SeisfmError
from napari_seisfm.search import FeatureMatrix, adjusted_rand_index, kmeans_facies
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


def separated(grid=GRID, dim=32, k=4, seed=0, noise=0.3):
    """Well-separated clusters scattered over the grid (not in blocks): (vectors, truth 0..k-1)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    truth = rng.integers(0, k, grid)
    truth.flat[:k] = np.arange(k)  # every cluster present
    v = centres[truth] + noise * rng.standard_normal((*grid, dim))
    return v.astype(np.float32), truth


def make_store(path, vectors, *, fingerprint="abc123", dtype="int8"):
    fv = FeatureVolume.create(
        path,
        grid=GridSpec(GRID, STRIDE),
        dim_in=vectors.shape[-1],
        dtype=dtype,
        model="test",
        cube_fingerprint=fingerprint,
        cube_summary=GEOMETRY,
        chunks=(8, 8, 8),
    )
    for idx, sl in fv.chunk_slices():
        fv.write_chunk(idx, vectors[sl])
    fv.mark_complete()
    return path


# ---------------------------------------------------------------- adjusted Rand index
def test_ari_hand_computed_cases():
    a = [0, 0, 1, 1, 2, 2]
    assert adjusted_rand_index(a, a) == 1.0
    assert adjusted_rand_index(a, [5, 5, 9, 9, 7, 7]) == 1.0  # labels are names only
    # a = {0,1}{2,3}, b = {0,1,2}{3}: n_ij = [[2,0],[1,1]] -> index 1, rows 2, cols 3, C(4,2) = 6
    # expected 2*3/6 = 1, max (2+3)/2 = 2.5 -> ARI (1 - 1) / (2.5 - 1) = 0
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.0)
    # a = {0,1,2}{3,4,5}, b = {0,1}{2,3}{4,5}: n_ij = [[2,1,0],[0,1,2]] -> index 1 + 1 = 2, rows 3 + 3 = 6,
    # cols 1 + 1 + 1 = 3, C(6,2) = 15, expected 6*3/15 = 1.2, max 4.5 -> (2 - 1.2) / (4.5 - 1.2) = 0.8 / 3.3
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(0.8 / 3.3)
    assert adjusted_rand_index([1, 1, 1], [2, 2, 2]) == 1.0  # both one cluster
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 20000), rng.integers(0, 5, 20000)
    assert abs(adjusted_rand_index(x, y)) < 0.01  # independent labellings: ~0
    with pytest.raises(ValueError):
        adjusted_rand_index([0, 1], [0, 1, 2])


# ---------------------------------------------------------------- k-means
@pytest.mark.parametrize("dtype", ["int8", "float16", "float32"])
def test_separated_clusters_are_recovered(dtype):
    v, truth = separated()
    fm = FeatureMatrix.from_array(v, GRID, dtype=dtype)
    r = kmeans_facies(fm, 4)
    assert r.classes.shape == GRID and r.classes.dtype == np.int32
    assert adjusted_rand_index(r.classes, truth) == 1.0
    assert set(np.unique(r.classes)) == {1, 2, 3, 4}
    counts = np.bincount(r.classes.ravel(), minlength=5)[1:]
    np.testing.assert_array_equal(counts, r.counts)
    assert np.all(np.diff(r.counts) <= 0)  # class 1 is the largest
    assert r.centroids.shape == (4, 32) and r.centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(r.centroids, axis=1), 1, atol=1e-5)
    # each centroid is (close to) the mean direction of its class
    x = fm.decode(fm.vectors)
    for c in range(1, 5):
        m = x[r.classes.ravel() == c].mean(0)
        assert float(m @ r.centroids[c - 1]) / np.linalg.norm(m) > 0.999
    assert r.seconds > 0 and r.engine == "lloyd" and r.sample_size == fm.grid.size


def test_same_seed_same_labels_and_sampling():
    v, truth = separated(grid=GRID, k=6, noise=1.0, seed=3)  # overlapping: the start matters
    fm = FeatureMatrix.from_array(v, GRID, dtype="int8")
    a = kmeans_facies(fm, 6, seed=7, sample=800)
    b = kmeans_facies(fm, 6, seed=7, sample=800)
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.sample_size == 800
    # a sample of separated clusters still finds them, and every grid point gets a class
    v, truth = separated()
    r = kmeans_facies(FeatureMatrix.from_array(v, GRID, dtype="int8"), 4, sample=200, seed=1)
    assert r.sample_size == 200 and adjusted_rand_index(r.classes, truth) == 1.0


def test_invalid_points_get_class_zero():
    v, truth = separated()
    valid = np.ones(GRID, bool)
    valid[3, :, 5] = False  # a dead trace
    v[0, 0, 1] = np.nan  # a NaN embedding
    fm = FeatureMatrix.from_array(v, GRID, dtype="int8", valid=valid)
    r = kmeans_facies(fm, 4)
    assert np.all(r.classes[3, :, 5] == 0) and r.classes[0, 0, 1] == 0
    ok = fm.valid.reshape(GRID)
    assert np.all(r.classes[ok] > 0) and r.counts.sum() == ok.sum()
    assert adjusted_rand_index(r.classes[ok], truth[ok]) == 1.0


def test_k_is_checked():
    v, _ = separated()
    fm = FeatureMatrix.from_array(v, GRID, dtype="int8")
    for k in (1, 0, -3):
        with pytest.raises(SeisfmError, match="at least 2"):
            kmeans_facies(fm, k)
    few = np.zeros(GRID, bool)
    few.flat[:5] = True
    small = FeatureMatrix.from_array(v, GRID, dtype="int8", valid=few)
    with pytest.raises(SeisfmError, match="5 grid points with a valid embedding"):
        kmeans_facies(small, 6)
    assert set(np.unique(kmeans_facies(small, 5).classes)) == {0, 1, 2, 3, 4, 5}  # k = valid points: allowed
    with pytest.raises(SeisfmError, match="smaller than k"):
        kmeans_facies(fm, 4, sample=3)
    with pytest.raises(SeisfmError, match="engine"):
        kmeans_facies(fm, 4, engine="faiss")


def test_cancel_and_progress():
    v, _ = separated()
    fm = FeatureMatrix.from_array(v, GRID, dtype="int8")
    seen = []
    kmeans_facies(fm, 4, max_iterations=10, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (11, 11)  # 10 fit steps + 1 assignment batch
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(SeisfmCancelled):
        kmeans_facies(fm, 4, cancel=lambda: True)
    calls = []
    with pytest.raises(SeisfmCancelled, match="assignment"):  # after the fit, before the grid is assigned
        kmeans_facies(
            fm, 4, max_iterations=10, progress=lambda d, t: calls.append(d), cancel=lambda: bool(calls) and calls[-1] >= 10
        )


def test_usearch_engine_runs():
    pytest.importorskip("usearch")
    v, truth = separated()
    fm = FeatureMatrix.from_array(v, GRID, dtype="int8")
    r = kmeans_facies(fm, 4, engine="usearch")
    assert r.engine == "usearch" and r.classes.shape == GRID
    assert set(np.unique(r.classes)) <= {1, 2, 3, 4}
    # usearch 2.26 starts at random rows it draws itself: a local optimum is possible, chance it is not
    assert adjusted_rand_index(r.classes, truth) > 0.3


# ---------------------------------------------------------------- CLI
def test_cli_cluster_equals_api(tmp_path, capsys):
    v, truth = separated()
    path = make_store(tmp_path / "f.zarr", v)
    out = tmp_path / "facies.npy"
    assert cli(["cluster", str(path), "--k", "4", "--out", str(out), "--seed", "2"]) == 0
    got = np.load(out)
    api = kmeans_facies(FeatureMatrix.open(path), 4, seed=2)
    np.testing.assert_array_equal(got, api.classes)
    assert adjusted_rand_index(got, truth) == 1.0
    text = capsys.readouterr().out
    assert "k=4" in text and "grid points per class {1: " in text
    zarr_out = tmp_path / "facies.zarr"
    assert cli(["cluster", str(path), "--k", "4", "--out", str(zarr_out), "--seed", "2"]) == 0
    import zarr

    np.testing.assert_array_equal(zarr.open_group(str(zarr_out), mode="r")["data"][:], got)
    # bad input: one line, exit 2
    assert cli(["cluster", str(path), "--k", "1", "--out", str(out)]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert cli(["cluster", str(path), "--k", str(int(np.prod(GRID)) + 1), "--out", str(out)]) == 2
    assert "valid embedding" in capsys.readouterr().err
    assert cli(["cluster", str(path), "--k", "4", "--out", str(tmp_path / "f.sgy")]) == 2
    assert "needs the cube" in capsys.readouterr().err


def test_cli_cluster_checks_the_cube_and_writes_full_resolution(tmp_path, capsys):
    from napari_seisfm.cube import geometry_from_summary
    from napari_seisfm.io.npy import write_npy

    v, _ = separated()
    geo = geometry_from_summary(GEOMETRY)
    cube_path = tmp_path / "cube.npy"
    write_npy(cube_path, np.zeros(GEOMETRY["shape"], np.float32), geo)
    other = make_store(tmp_path / "other.zarr", v, fingerprint="not-this-one")
    assert cli(["cluster", str(other), "--k", "4", "--cube", str(cube_path), "--out", str(tmp_path / "c.npy")]) == 2
    assert "another cube" in capsys.readouterr().err
    good = make_store(tmp_path / "g.zarr", v, fingerprint=geo.fingerprint())
    out = tmp_path / "c.npy"
    assert cli(["cluster", str(good), "--k", "4", "--cube", str(cube_path), "--full-resolution", "--out", str(out)]) == 0
    full = np.load(out)
    assert full.shape == tuple(GEOMETRY["shape"])
    grid_map = kmeans_facies(FeatureMatrix.open(good), 4).classes
    assert set(np.unique(full)) == set(np.unique(grid_map))
    np.testing.assert_array_equal(full[::2, ::2, ::4], grid_map)  # nearest at the grid points themselves
