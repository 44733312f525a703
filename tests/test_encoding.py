"""The lighter vector encoding and the PCA through a QR (issue 24) against the code of before, and the CLI's lazy
command imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_seisfm.store.encoding import encode_vectors, pca_basis

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)


def encode_before(vectors, dtype="int8", quant_scale=127.0, pca_mean=None, pca_components=None):
    """``features.encode_vectors`` as it was before issue 24 (frozen)."""
    v = np.asarray(vectors, np.float32)
    ok = np.isfinite(v).all(axis=-1)
    v = np.where(ok[..., None], v, 0.0)
    if pca_components is not None:
        v = (v - pca_mean) @ pca_components.T
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    ok &= norm[..., 0] > 0
    v = v / np.maximum(norm, 1e-12)
    if dtype == "int8":
        return np.clip(np.rint(v * quant_scale), -127, 127).astype(np.int8), ok
    return v.astype(dtype), ok


def pca_before(x, dim):
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean.astype(np.float32), vt[:dim].astype(np.float32)


def wide(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((6, 5, 40, 16)) @ rng.standard_normal((16, 96)) + rng.standard_normal(96)).astype(dtype)
    x[0, 0, 3, 7] = np.nan
    x[1, 2, 5, 0] = np.inf
    x[2, 1, 9, :] = 0  # zero row: invalid without PCA
    return x


@pytest.mark.parametrize("src", ["float16", "float32"])
@pytest.mark.parametrize("dtype", ["int8", "float16", "float32"])
def test_encoding_equals_the_encoding_of_before_bit_for_bit(src, dtype):
    x = wide(src)
    rows = x.reshape(-1, 96).astype(np.float64)
    mean, comps = pca_basis(rows[np.isfinite(rows).all(axis=1)], 12)
    keep = x.copy()
    for kw in ({}, {"pca_mean": mean, "pca_components": comps}):
        got, ok = encode_vectors(x, dtype, 127.0, **kw)
        ref, ok_ref = encode_before(x, dtype, 127.0, **kw)
        np.testing.assert_array_equal(ok, ok_ref)
        np.testing.assert_array_equal(got[ok], ref[ok])  # invalid rows are zeroed by every caller
        assert not ok[0, 0, 3] and not ok[1, 2, 5] and ok.sum() >= ok.size - 3
    np.testing.assert_array_equal(x, keep)  # the caller's array is never written


@pytest.mark.parametrize("shape", [(3000, 40), (8192, 96), (73, 40), (74, 40), (60, 40), (5, 40)])
def test_pca_through_qr_gives_the_svd_axes_bit_for_bit(shape):
    """R's SVD after a QR is what LAPACK does inside the SVD of a tall matrix: the same basis, bit for bit, on
    both sides of its switch (rows >= 11/6 columns: 73 of 40 rows, not 72) and with fewer rows than dims."""
    rng = np.random.default_rng(shape[0])
    m, n = shape
    scales = np.linspace(5, 0.5, n)
    x = rng.standard_normal((m, n)) * scales @ np.linalg.qr(rng.standard_normal((n, n)))[0] + 3.0
    dim = min(8, n)
    mean, comps = pca_basis(x, dim)
    mean_b, comps_b = pca_before(x, dim)
    np.testing.assert_array_equal(mean, mean_b)
    if m < dim:  # the zero rows of a sample smaller than the basis
        comps_b = np.vstack([comps_b, np.zeros((dim - len(comps_b), n), np.float32)])
    np.testing.assert_array_equal(comps, comps_b)


def test_one_command_imports_only_its_own_module():
    """`seisfm features import` builds its parser without the search package (and scipy with it); the full
    parser (`seisfm --help`) still lists every command."""
    code = (
        "import sys\n"
        "from napari_seisfm import cli\n"
        "p = cli.build_parser('features')\n"
        "assert not any(m.startswith(('napari_seisfm.search', 'scipy', 'torch')) for m in sys.modules), sorted(sys.modules)\n"
        "assert set(p._subparsers._group_actions[0].choices) == {'features'}\n"
        "full = cli.build_parser()\n"
        "assert {'search', 'segment', 'features', 'embed'} <= set(full._subparsers._group_actions[0].choices)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
