"""usearch as an independent reference for kNN, and its coexistence with the SIMD kernels in one process."""

import subprocess
import sys

import numpy as np
import pytest

from napari_seisfm.search import FeatureMatrix, KnnSegmenter

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_knn_matches_usearch_exact_search(dtype):
    """Our blocked GEMM + top-k against a real usearch Index over the support set, exact search, plain vote."""
    usearch_index = pytest.importorskip("usearch.index")
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((4, 32))
    truth = rng.integers(0, 4, size=20**3)
    vectors = (centres[truth] + 0.8 * rng.standard_normal((truth.size, 32))).astype(np.float32)
    fm = FeatureMatrix.from_array(vectors, (20, 20, 20), dtype=dtype)
    pick = rng.choice(truth.size, 400, replace=False)
    points, classes = np.stack(np.unravel_index(pick, fm.shape), 1), truth[pick] + 1
    ours = KnnSegmenter(fm, points, classes, k=5).segment().classes.reshape(-1)

    support = fm.vectors[pick]
    index = usearch_index.Index(ndim=32, metric="ip", dtype={"int8": "i8", "float32": "f32"}[dtype])
    index.add(np.arange(len(pick)), support)
    found = index.search(fm.vectors, 5, exact=True)
    votes = (classes[np.asarray(found.keys, np.int64)][..., None] == np.arange(1, 5)).sum(1)
    reference = 1 + np.argmax(votes, axis=1)
    decided = np.sort(votes, axis=1)[:, -1] > np.sort(votes, axis=1)[:, -2]  # no vote tie (tie rules differ)
    assert decided.mean() > 0.9
    assert (ours[decided] == reference[decided]).mean() > 0.999  # equal-similarity neighbours may differ


@pytest.mark.parametrize("usearch_first", [True, False])
def test_usearch_in_the_process_does_not_break_the_map_kernels(usearch_first):
    """usearch loaded before or after our kernels, in a fresh process: every kernel we pick is right, none crashes."""
    pytest.importorskip("usearch")
    first, later = "from usearch.index import Index", "from napari_seisfm.search import CentroidSearch, FeatureMatrix"
    script = f"""
import numpy as np
{first if usearch_first else later}
{later if usearch_first else first}
Index(ndim=8, metric="ip", dtype="i8").add(np.arange(4), np.ones((4, 8), np.int8))
from napari_seisfm.search.kernels import DotKernel, available, choose
assert choose("int8") == ("numkong" if {usearch_first} else "simsimd"), choose("int8")
rng = np.random.default_rng(0)
fm = FeatureMatrix.from_array(rng.standard_normal((16 ** 3, 32)).astype(np.float32), (16, 16, 16), dtype="int8")
cs = CentroidSearch(fm)
cs.add((3, 3, 3))
ref = fm.vectors.astype(np.float32) @ cs.query() / fm.quant_scale
for kernel in ("simsimd", "numkong"):
    if available(kernel):
        got = DotKernel(fm.vectors, quant_scale=fm.quant_scale, kernel=kernel, threads=2)(cs.query())
        assert np.abs(got - ref).max() < 0.05, (kernel, np.abs(got - ref).max())
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"
