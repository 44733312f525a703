"""Context for linear read-outs: the standardised vectors smoothed over the neighbourhood of a grid point.

A grid point's vector describes its own few samples; whether it sits in a salt body, in a package of
dipping layers or at a flat spot's edge is told by its neighbourhood. A linear model on
``[z, G_1(z), G_2(z), ...]`` (``G_s``: a Gaussian of ``s`` grid points, ``z``: the standardised vector)
sees both. Because the model is linear, ``G_s(z) . v = G_s(z . v)``: applied to a whole cube it smooths
one *logit channel per class* instead of every feature dimension (8 channels instead of 64), and the
smoothed features themselves are only ever computed at the labelled points (:meth:`Context.at_points`),
exactly as ``scipy.ndimage.gaussian_filter`` (``mode="nearest"``) would give them on the whole grid.

Invalid grid points count as ``z = 0`` (the mean vector) in the smoothing, in training and in use alike.
Measured on `seisfm bench` (docs/quality.md).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .matrix import FeatureMatrix

TRUNCATE = 2.0  # every Gaussian of the linear read-out is cut at 2 sigma: radius int(2 sigma + 0.5)
STATS_POINTS = 1000  # random grid points that estimate each scale's mean and spread


def sigma_triples(context) -> tuple[tuple[float, float, float], ...]:
    """Scales as per-axis sigmas: ``(2, 4)`` -> ((2, 2, 2), (4, 4, 4)); a triple stays a triple."""
    out = []
    for s in context or ():
        t = tuple(float(v) for v in np.broadcast_to(np.asarray(s, float), (3,)))
        if not np.isfinite(t).all() or min(t) < 0 or max(t) == 0:
            raise ValueError(f"context scale {s!r}: need sigmas >= 0 in grid points, not all zero")
        out.append(t)
    return tuple(out)


def _kernel(sigma: float) -> np.ndarray:
    """The 1-D weights scipy.ndimage.gaussian_filter1d uses (same radius, normalised)."""
    radius = int(TRUNCATE * sigma + 0.5)
    if sigma == 0 or radius == 0:
        return np.ones(1)
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def radius(sigma3) -> tuple[int, int, int]:
    return tuple(len(_kernel(s)) // 2 for s in sigma3)


def smooth_grid(channels: np.ndarray, sigma3, *, out: np.ndarray | None = None, step=None) -> np.ndarray:
    """Gaussian smoothing of grid-shaped ``channels`` (..., C) over the three grid axes, channel by channel
    (``out=channels`` smooths in place); ``step()`` after each channel, for progress and cancel."""
    out = np.empty_like(channels) if out is None else out
    for c in range(channels.shape[-1]):
        out[..., c] = ndimage.gaussian_filter(np.ascontiguousarray(channels[..., c]), sigma3, mode="nearest",
                                              truncate=TRUNCATE)
        if step is not None:
            step()
    return out


class Context:
    """Standardised vectors smoothed at a few scales, evaluated at chosen grid points."""

    def __init__(self, features: FeatureMatrix, standardise, scales):
        self.features = features
        self.standardise = standardise
        self.scales = sigma_triples(scales)
        self.kernels = [[_kernel(s) for s in sigma3] for sigma3 in self.scales]
        # per matrix and scales, computed once: a refit after a new label stroke only smooths at its points
        cache = features.__dict__.setdefault("_context_stats", {})
        if self.scales not in cache:
            cache[self.scales] = self._stats()
        self.mean, self.std = cache[self.scales]

    def raw_at(self, points: np.ndarray, chunk: int = 64) -> np.ndarray:
        """Smoothed standardised vectors at grid ``points`` (n, 3): (n, S, dim), not re-standardised.

        The standardisation is affine, so it is applied after the weighted sum: ``G(z) = (G(v x) / scale -
        mean G(v)) / std`` with ``x`` the stored rows and ``v`` the valid mask (invalid rows count as z = 0).
        One batched product of the 3-D kernel weights with each point's gathered neighbourhood."""
        fm = self.features
        st = self.standardise
        shape = np.asarray(fm.shape)
        points = np.asarray(points, int).reshape(-1, 3)
        scale = np.float32(fm.quant_scale if fm.dtype == "int8" else 1.0)
        out = np.zeros((len(points), len(self.scales), fm.dim), np.float32)
        for s, kern in enumerate(self.kernels):
            offsets = [np.arange(-(len(k) // 2), len(k) // 2 + 1) for k in kern]
            weights = np.einsum("i,j,k->ijk", *kern).astype(np.float32).ravel()
            for a in range(0, len(points), chunk):
                p = points[a:a + chunk]
                # neighbour indices per axis, clamped as mode="nearest" does
                idx = [np.clip(p[:, ax, None] + offsets[ax][None, :], 0, shape[ax] - 1) for ax in range(3)]
                flat = ((idx[0][:, :, None, None] * shape[1] + idx[1][:, None, :, None]) * shape[2]
                        + idx[2][:, None, None, :]).reshape(len(p), -1)
                ok = fm.valid[flat]
                w = weights[None, :] * ok  # (n, m): invalid neighbours weigh nothing in the sum ...
                rows = fm.vectors[flat].astype(np.float32)  # (n, m, d)
                summed = np.matmul(w[:, None, :], rows)[:, 0] / scale
                # ... and count as the mean (z = 0) in the standardised result
                out[a:a + chunk, s] = (summed - st.mean * w.sum(axis=1, keepdims=True)) / st.std
        return out

    def _stats(self):
        fm = self.features
        valid = np.flatnonzero(fm.valid)
        take = np.sort(np.random.default_rng(0).choice(valid, min(STATS_POINTS, len(valid)), replace=False))
        raw = self.raw_at(np.stack(np.unravel_index(take, fm.shape), 1))
        std = raw.std(axis=0)
        return raw.mean(axis=0), np.where(std > 1e-6, std, 1.0).astype(np.float32)

    def at(self, points) -> np.ndarray:
        """Re-standardised context features at grid points: (n, S * dim), the columns a model is fitted on."""
        raw = self.raw_at(points)
        return ((raw - self.mean) / self.std).reshape(len(raw), -1)
