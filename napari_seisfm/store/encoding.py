"""The one vector encoding of the feature store and the search matrix: optional PCA, unit length, then int8
(x ``quant_scale``, rounded), float16 or float32; its inverse; the PCA basis both extraction and import fit;
and how much an encoding (PCA, int8) changes what search sees."""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import SeisfmError

DTYPES = ("int8", "float16", "float32")
DTYPE_ALIASES = {"i8": "int8", "f16": "float16", "f32": "float32"}
PCA_SAMPLE_VECTORS = 50_000  # vectors in the sample a PCA basis is fitted on (`embed` and `features import`)


def encode_vectors(vectors, dtype: str = "int8", quant_scale: float = 127.0, pca_mean=None, pca_components=None):
    """Raw float embeddings ``(..., dim)`` -> (stored values, valid mask): the one vector encoding of the
    feature store and the search matrix. Optional PCA, then unit length, then ``dtype`` (int8: x quant_scale,
    rounded). Rows with NaN/inf or zero length are invalid and stored as zeros."""
    v = np.asarray(vectors, np.float32)
    if pca_components is not None:
        # no finiteness pass or masked copy over the wide input: a NaN/inf in a row makes its projection
        # non-finite (NaN * 0 and inf * 0 are NaN), so the check runs on the narrow output; centred in place
        # when the float32 conversion already made a copy
        v = (np.subtract(v, pca_mean, out=v) if v is not vectors else v - pca_mean) @ pca_components.T
        ok = np.isfinite(v).all(axis=-1)
        if not ok.all():
            v[~ok] = 0.0
    else:
        ok = np.isfinite(v).all(axis=-1)
        v = np.where(ok[..., None], v, 0.0)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    ok &= norm[..., 0] > 0
    v = np.divide(v, np.maximum(norm, 1e-12), out=v if pca_components is not None else None)
    if dtype == "int8":
        v *= np.float32(quant_scale)
        np.rint(v, out=v)
        np.clip(v, -127, 127, out=v)
        return v.astype(np.int8), ok
    return v.astype(dtype), ok


def decode_vectors(stored, dtype: str, quant_scale: float) -> np.ndarray:
    """Stored values -> float32 unit vectors (approximately unit for int8): :func:`encode_vectors` undone."""
    v = np.asarray(stored, np.float32)
    return v / np.float32(quant_scale) if dtype == "int8" else v


def basis_hash(mean, components) -> str:
    """SHA-256 (16 hex digits) of a PCA basis as stored (float32 bytes of mean, then components)."""
    h = hashlib.sha256(np.ascontiguousarray(mean, np.float32).tobytes())
    h.update(np.ascontiguousarray(components, np.float32).tobytes())
    return h.hexdigest()[:16]


def pca_basis(x: np.ndarray, dim: int):
    """``(mean, components)`` of the sample rows ``x`` (float64): centred SVD, the top ``dim`` right
    singular vectors. Shared by extraction and `seisfm features import`.

    LAPACK's SVD (gesdd) of a tall matrix (rows >= 11/6 columns) first factors it as QR and works on R; doing
    that step here and asking for R's SVD skips forming Q and the left singular vectors (the row-sized part
    of the work): the same axes bit for bit (so stores stay comparable across versions: the survey library
    compares stored vectors of several stores), 1.7x faster at 8192 x 768 (tests/test_encoding.py)."""
    if len(x) < 2:
        raise SeisfmError("too few finite embeddings to fit a PCA basis; use --pca 0")
    mean = x.mean(axis=0)
    xc = x - mean
    m, n = xc.shape
    tall = m >= int(min(m, n) * 11 / 6)  # gesdd's own switch to the QR path (its MNTHR)
    _, _, vt = np.linalg.svd(np.linalg.qr(xc, mode="r") if tall else xc, full_matrices=False)
    components = vt[:dim]
    if len(components) < dim:  # fewer samples than dimensions: pad with zero rows (never happens on real cubes)
        components = np.vstack([components, np.zeros((dim - len(components), x.shape[1]))])
    return mean.astype(np.float32), components.astype(np.float32)


# ---------------------------------------------------------------------------- reduction check


def similarity_agreement(reference, other, queries, *, top: float = 0.01, k: int = 10) -> dict:
    """How much a reduced store (PCA, int8) changes what search sees, against a reference store (both
    :class:`~napari_seisfm.store.volume.FeatureVolume`).

    For each query grid point (``(a, b, c)`` rows of ``queries``) the similarity map is the cosine
    of its stored vector with every stored vector, in each store. Returns the mean and worst
    Pearson correlation of the two maps, the overlap of their top ``top`` fraction of grid points
    and the overlap of the ``k`` nearest neighbours (query itself excluded). Loads both stores
    whole: meant for benchmark-sized cubes.
    """
    if reference.grid != other.grid:
        raise SeisfmError(f"{other.path}: grid {other.grid.shape} differs from {reference.path}'s {reference.grid.shape}")
    va, oka = reference.load()
    vb, okb = other.load()
    ok = oka & okb
    va, vb = reference.decode(va[ok]), other.decode(vb[ok])
    flat = np.flatnonzero(ok)
    pos = np.full(ok.size, -1)
    pos[flat] = np.arange(flat.size)
    n_top = max(1, int(round(top * flat.size)))
    corr, tops, knn = [], [], []
    for q in np.atleast_2d(queries):
        i = pos[np.ravel_multi_index(tuple(int(x) for x in q), reference.grid.shape)]
        if i < 0:
            continue
        ma, mb = va @ va[i], vb @ vb[i]
        corr.append(float(np.corrcoef(ma, mb)[0, 1]))
        ta, tb = np.argpartition(-ma, n_top - 1)[:n_top], np.argpartition(-mb, n_top - 1)[:n_top]
        tops.append(len(np.intersect1d(ta, tb)) / n_top)
        ma[i] = mb[i] = -np.inf
        ka, kb = np.argpartition(-ma, k - 1)[:k], np.argpartition(-mb, k - 1)[:k]
        knn.append(len(np.intersect1d(ka, kb)) / k)
    if not corr:
        raise SeisfmError("no valid query points")
    return {
        "queries": len(corr),
        "map_correlation_mean": float(np.mean(corr)),
        "map_correlation_min": float(np.min(corr)),
        f"top{top:.0%}_overlap_mean": float(np.mean(tops)),
        f"top{top:.0%}_overlap_min": float(np.min(tops)),
        f"knn{k}_overlap_mean": float(np.mean(knn)),
    }
