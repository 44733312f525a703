"""The dock's first segmentation must not wait for `import torch` (seconds on a cold start): issue 10, item 9."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from napari_seisfm.search import FeatureMatrix, KnnSegmenter

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from napari_seisfm.search import FeatureMatrix
    from napari_seisfm.session import ClickToMapSession, SegmentationSettings
    import napari_seisfm.plugin.widgets.click_to_map  # the dock's module must not pull torch in either

    rng = np.random.default_rng(0)
    v = rng.normal(size=(6, 6, 8, 8)).astype(np.float32)
    fm = FeatureMatrix.from_array(v, (6, 6, 8), dtype="int8")
    pts = np.array([[0, 0, 0], [1, 1, 1], [5, 5, 7], [4, 4, 6]])
    cls = np.array([1, 1, 2, 2])
    session = ClickToMapSession(fm)
    for settings in (SegmentationSettings("knn", k=3), SegmentationSettings("linear", smooth=1.0),
                     SegmentationSettings("forest"), SegmentationSettings("boosting"), SegmentationSettings("mlp")):
        session.segmentation = settings
        job = session.segment(pts, cls, region=(slice(2, 3), slice(None), slice(None)), cancel=lambda: False)
        first = next(job)  # the visible slice
        assert first.classes.shape == (1, 6, 8), first.classes.shape
        try:
            next(job)
        except StopIteration as done:
            assert done.value.classes.shape == (6, 6, 8)
    session.set_decision("mlp")  # the nonlinear click decision too (numpy MLP), preview and whole map
    session.set_clicks([(0, 0, 0), (1, 1, 1)], [(5, 5, 7)], space="grid")
    session.preview(session.snapshot(), (slice(2, 3), slice(None), slice(None)))
    session.update()
    print("torch" in sys.modules)
""")


def test_first_segmentation_does_not_import_torch():
    """A fresh process: the search modules, the dock's segmentation job (kNN, linear and the scikit-learn and
    numpy read-outs, slice and whole small grid), the MLP click decision, and no torch in sys.modules afterwards
    (only the conv head imports it)."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={"OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_numpy_knn_backend_matches_torch_with_ties():
    """Coarse int8 values and duplicated support points make equal similarities common: the numpy backend
    finds the same neighbours (stable order) and votes as the torch float32 GEMM + topk."""
    grid = (10, 10, 10)
    rng = np.random.default_rng(5)
    v = rng.integers(-2, 3, (*grid, 16)).astype(np.int8)
    fm = FeatureMatrix.from_array(v, grid, quant_scale=2.0, valid=np.abs(v).sum(-1) > 0)
    pts = rng.integers(0, 10, (60, 3))
    cls = rng.integers(1, 4, 60)
    pts, cls = np.concatenate([pts, pts[:10]]), np.concatenate([cls, cls[:10] % 3 + 1])
    x = fm.vectors[: fm.grid.size]
    for k in (1, 4, 7, 200):
        a = KnnSegmenter(fm, pts, cls, k=k, backend="numpy", block=300)
        b = KnnSegmenter(fm, pts, cls, k=k, backend="torch-f32", threads=1, block=300)
        assert a.backend == "numpy"
        ia, da = a._neighbours(x)
        ib, db = b._neighbours(x)
        # numpy: exactly a stable sort of -similarity; torch: the same set (its order among equal values is free)
        sims = x.astype(np.float32) @ fm.vectors[a.support_flat].astype(np.float32).T
        np.testing.assert_array_equal(ia, np.argsort(-sims, axis=1, kind="stable")[:, : a.k_used])
        np.testing.assert_array_equal(np.sort(ia, 1), np.sort(ib, 1))
        np.testing.assert_array_equal(da, np.sort(db, 1)[:, ::-1])
        for got, ref in zip(a.classify(np.arange(fm.grid.size)), b.classify(np.arange(fm.grid.size))):
            np.testing.assert_array_equal(got, ref)
