"""Context for linear read-outs: the standardised vectors smoothed over the neighbourhood of a grid point.

A grid point's vector describes its own few samples; whether it sits in a salt body, in a package of
dipping layers or at a flat spot's edge is told by its neighbourhood. A linear model on
``[z, G_1(z), G_2(z), ...]`` (``G_s``: a Gaussian of ``s`` grid points, ``z``: the standardised vector)
sees both. Because the model is linear, ``G_s(z) . v = G_s(z . v)``: applied to a whole cube it smooths
one *logit channel per class* instead of every feature dimension (8 channels instead of 64), and the
smoothed features themselves are only ever computed at the labelled points (:meth:`Context.at_points`),
exactly as ``scipy.ndimage.gaussian_filter`` (``mode="nearest"``) would give them on the whole grid.

Invalid grid points count as ``z = 0`` (the mean vector) in the smoothing, in training and in use alike.

**Wide scales** (a sigma of :data:`WIDE` grid points or more on some axis: the reach of a salt body or a
flat spot, not of a reflector): a Gaussian of 12 grid points would need a halo of 24 around every region
and 49^3 neighbours per labelled point. They are computed on a pooled grid instead (:class:`Pooled`): the
standardised vectors averaged over blocks of :data:`POOL` grid points along each wide axis (once per
matrix, cached), smoothed there at the equivalent coarse sigma and interpolated back (linearly, from the
block centres). The pooled grid covers the whole matrix, so a wide scale needs no halo, costs the same at
a labelled point and on a region, and a slice equals the whole grid exactly. It is a Gaussian of about the
scale asked for, not the exact one (the block mean and the interpolation add a little smoothing, which the
coarse sigma takes off). Measured on `seisfm bench` (docs/quality.md).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .matrix import FeatureMatrix

TRUNCATE = 2.0  # every Gaussian of the linear read-out is cut at 2 sigma: radius int(2 sigma + 0.5)
STATS_POINTS = 1000  # random grid points that estimate each scale's mean and spread
ROW_CACHE = 200_000  # context rows kept per matrix and scales: a refit after a stroke computes the stroke's only
WIDE = 4.0  # a scale with a sigma this large (grid points) on some axis is computed on the pooled grid
POOL = 4  # grid points per pooled block along an axis whose sigma is WIDE or more


def sigma_triples(context) -> tuple[tuple[float, float, float], ...]:
    """Scales as per-axis sigmas: ``(2, 4)`` -> ((2, 2, 2), (4, 4, 4)); a triple stays a triple."""
    out = []
    for s in context or ():
        try:
            t = tuple(float(v) for v in np.broadcast_to(np.asarray(s, float), (3,)))
        except (TypeError, ValueError):
            raise ValueError(f"context scale {s!r}: need one number or three (grid points)") from None
        if not np.isfinite(t).all() or min(t) < 0 or max(t) == 0:
            raise ValueError(f"context scale {s!r}: need sigmas >= 0 in grid points, not all zero")
        out.append(t)
    return tuple(out)


def is_wide(sigma3) -> bool:
    return max(sigma3) >= WIDE


def pool_factors(sigma3) -> tuple[int, int, int]:
    """Block size per axis of a wide scale's pooled grid: POOL where the sigma is wide, 1 elsewhere."""
    return tuple(POOL if s >= WIDE else 1 for s in sigma3)


def coarse_sigma(sigma3, factors) -> tuple[float, float, float]:
    """The sigma on the pooled grid (in blocks) that, with the block mean's own spread (variance
    (f^2 - 1) / 12 grid points^2), makes about ``sigma3`` on the grid."""
    return tuple(float(np.sqrt(max(s * s - (f * f - 1) / 12.0, 0.0)) / f) for s, f in zip(sigma3, factors))


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


def reach(scales) -> tuple[int, int, int]:
    """Grid points around a region that its context depends on: the widest fine scale's radius per axis
    (wide scales read the pooled grid, which covers the whole matrix)."""
    return tuple(max((radius(s3)[ax] for s3 in scales if not is_wide(s3)), default=0) for ax in range(3))


def smooth_grid(channels: np.ndarray, sigma3, *, out: np.ndarray | None = None, step=None) -> np.ndarray:
    """Gaussian smoothing of grid-shaped ``channels`` (..., C) over the three grid axes, channel by channel
    (``out=channels`` smooths in place); ``step()`` after each channel, for progress and cancel."""
    out = np.empty_like(channels) if out is None else out
    for c in range(channels.shape[-1]):
        out[..., c] = ndimage.gaussian_filter(np.ascontiguousarray(channels[..., c]), sigma3, mode="nearest", truncate=TRUNCATE)
        if step is not None:
            step()
    return out


def smooth_box(values: np.ndarray, sigma3, keep) -> np.ndarray:
    """Gaussian smoothing of ``values`` (a box of the grid with a halo, (..., C)) axis by axis, each axis
    cropped to ``keep`` (three slices into the box) once it is smoothed: the smoothing of the grid inside
    ``keep`` when the halo holds the kernel's reach (or the grid's edge, repeated as ``mode="nearest"``).
    The same float32 passes as ``ndimage.gaussian_filter``; every caller on one grid gets identical values."""
    out = np.asarray(values, np.float32)
    for ax in range(3):
        if sigma3[ax] > 0:
            out = ndimage.gaussian_filter1d(out, sigma3[ax], axis=ax, mode="nearest", truncate=TRUNCATE)
        take = [slice(None)] * out.ndim
        take[ax] = keep[ax]
        out = out[tuple(take)]
    return out


def _axis_weights(n_fine: int, f: int, n_coarse: int, start: int, stop: int):
    """Linear interpolation from block centres (block b covers grid points b f .. b f + f - 1) at grid
    points start..stop-1 of one axis: (lower block, upper block, weight of the upper)."""
    x = (np.arange(start, stop) + 0.5) / f - 0.5
    x = np.clip(x, 0, n_coarse - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, n_coarse - 1)
    return lo, hi, (x - lo).astype(np.float32)


class Pooled:
    """The standardised vectors (invalid points as z = 0) averaged over blocks of ``factors`` grid points:
    the coarse grid the wide scales are smoothed on. Computed once per matrix and block size (one pass over
    the stored rows, in slabs), cached on the matrix like its standardisation."""

    def __init__(self, features: FeatureMatrix, standardise, factors):
        self.features = features
        self.factors = tuple(int(f) for f in factors)
        shape = features.shape
        self.coarse_shape = tuple(-(-n // f) for n, f in zip(shape, self.factors))
        self.grid = self._pool(standardise)

    @classmethod
    def of(cls, features: FeatureMatrix, standardise, factors) -> Pooled:
        cache = features.__dict__.setdefault("_pooled", {})
        key = tuple(int(f) for f in factors)
        if key not in cache:
            cache[key] = cls(features, standardise, key)
        return cache[key]

    def _pool(self, standardise) -> np.ndarray:
        fm = self.features
        n0, n1, n2 = fm.shape
        f0, f1, f2 = self.factors
        c0, c1, c2 = self.coarse_shape
        out = np.zeros((c0, c1, c2, fm.dim), np.float32)
        plane = n1 * n2
        counts1 = np.bincount(np.arange(n1) // f1, minlength=c1).astype(np.float32)
        counts2 = np.bincount(np.arange(n2) // f2, minlength=c2).astype(np.float32)
        for b in range(c0):
            a0, b0 = b * f0, min((b + 1) * f0, n0)
            rows = slice(a0 * plane, b0 * plane)
            z = standardise(fm.decode(fm.vectors[rows]))
            z[~fm.valid[rows]] = 0.0
            z = z.reshape(b0 - a0, n1, n2, fm.dim).sum(axis=0)  # (n1, n2, d)
            z = np.add.reduceat(z, np.arange(0, n1, f1), axis=0) if f1 > 1 else z
            z = np.add.reduceat(z, np.arange(0, n2, f2), axis=1) if f2 > 1 else z
            out[b] = z / ((b0 - a0) * counts1[:, None, None] * counts2[None, :, None])
        return out

    def box(self, coarse: np.ndarray, region) -> np.ndarray:
        """``coarse`` (the pooled grid's shape, (..., C)) interpolated at the grid points of a box
        (three slices): separable linear interpolation from the block centres."""
        out = coarse
        for ax, (sl, f) in enumerate(zip(region, self.factors)):
            n_c = self.coarse_shape[ax]
            if f == 1:
                out = np.take(out, np.arange(sl.start, sl.stop), axis=ax)
                continue
            lo, hi, w = _axis_weights(self.features.shape[ax], f, n_c, sl.start, sl.stop)
            shape = [1] * out.ndim
            shape[ax] = len(w)
            w = w.reshape(shape)
            out = np.take(out, lo, axis=ax) * (1 - w) + np.take(out, hi, axis=ax) * w
        return out.astype(np.float32, copy=False)

    def at(self, coarse: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``coarse`` interpolated at grid ``points`` (n, 3): (n, C), the same weights as :meth:`box`."""
        points = np.asarray(points, int).reshape(-1, 3)
        lo, hi, w = [], [], []
        for ax, f in enumerate(self.factors):
            n_c = self.coarse_shape[ax]
            x = np.clip((points[:, ax] + 0.5) / f - 0.5, 0, n_c - 1)
            a = np.floor(x).astype(int)
            lo.append(a)
            hi.append(np.minimum(a + 1, n_c - 1))
            w.append((x - a).astype(np.float32))
        out = np.zeros((len(points), coarse.shape[-1]), np.float32)
        for corner in range(8):
            bits = [(corner >> ax) & 1 for ax in range(3)]
            idx = tuple(hi[ax] if bits[ax] else lo[ax] for ax in range(3))
            weight = np.ones(len(points), np.float32)
            for ax in range(3):
                weight *= w[ax] if bits[ax] else 1 - w[ax]
            out += weight[:, None] * coarse[idx]
        return out


class Context:
    """Standardised vectors smoothed at a few scales, evaluated at chosen grid points or on boxes."""

    def __init__(self, features: FeatureMatrix, standardise, scales):
        self.features = features
        self.standardise = standardise
        self.scales = sigma_triples(scales)
        self.kernels = [[_kernel(s) for s in sigma3] for sigma3 in self.scales]
        # wide scales: the pooled grid (shared by scales of one block size) smoothed at the coarse sigma
        self._wide: dict[int, tuple[Pooled, np.ndarray]] = {}
        smoothed = features.__dict__.setdefault("_pooled_smoothed", {})  # per matrix, like the pooled grid
        for i, sigma3 in enumerate(self.scales):
            if is_wide(sigma3):
                f = pool_factors(sigma3)
                pooled = Pooled.of(features, standardise, f)
                key = (f, coarse_sigma(sigma3, f))
                if key not in smoothed:
                    smoothed[key] = smooth_grid(pooled.grid, key[1])
                self._wide[i] = (pooled, smoothed[key])
        # per matrix and scales, computed once: a refit after a new label stroke only smooths at its points
        cache = features.__dict__.setdefault("_context_stats", {})
        if self.scales not in cache:
            cache[self.scales] = self._stats()
        self.mean, self.std = cache[self.scales]

    def is_wide(self, i: int) -> bool:
        return i in self._wide

    def pooled(self, i: int) -> tuple[Pooled, np.ndarray]:
        """Scale ``i``'s pooled grid and its smoothed coarse vectors (wide scales only)."""
        return self._wide[i]

    @property
    def reach(self) -> tuple[int, int, int]:
        return reach(self.scales)

    def raw_at(self, points: np.ndarray, chunk: int = 64) -> np.ndarray:
        """Smoothed standardised vectors at grid ``points`` (n, 3): (n, S, dim), not re-standardised.

        Fine scales: the standardisation is affine, so it is applied after the weighted sum: ``G(z) =
        (G(v x) / scale - mean G(v)) / std`` with ``x`` the stored rows and ``v`` the valid mask (invalid
        rows count as z = 0); one batched product of the 3-D kernel weights with each point's gathered
        neighbourhood. Wide scales: interpolated from the smoothed pooled grid."""
        fm = self.features
        st = self.standardise
        shape = np.asarray(fm.shape)
        points = np.asarray(points, int).reshape(-1, 3)
        scale = np.float32(fm.quant_scale if fm.dtype == "int8" else 1.0)
        out = np.zeros((len(points), len(self.scales), fm.dim), np.float32)
        for s, kern in enumerate(self.kernels):
            if s in self._wide:
                pooled, coarse = self._wide[s]
                out[:, s] = pooled.at(coarse, points)
                continue
            offsets = [np.arange(-(len(k) // 2), len(k) // 2 + 1) for k in kern]
            weights = np.einsum("i,j,k->ijk", *kern).astype(np.float32).ravel()
            for a in range(0, len(points), chunk):
                p = points[a : a + chunk]
                # neighbour indices per axis, clamped as mode="nearest" does
                idx = [np.clip(p[:, ax, None] + offsets[ax][None, :], 0, shape[ax] - 1) for ax in range(3)]
                flat = (
                    (idx[0][:, :, None, None] * shape[1] + idx[1][:, None, :, None]) * shape[2] + idx[2][:, None, None, :]
                ).reshape(len(p), -1)
                ok = fm.valid[flat]
                w = weights[None, :] * ok  # (n, m): invalid neighbours weigh nothing in the sum ...
                rows = fm.vectors[flat].astype(np.float32)  # (n, m, d)
                summed = np.matmul(w[:, None, :], rows)[:, 0] / scale
                # ... and count as the mean (z = 0) in the standardised result
                out[a : a + chunk, s] = (summed - st.mean * w.sum(axis=1, keepdims=True)) / st.std
        return out

    def _stats(self):
        fm = self.features
        valid = np.flatnonzero(fm.valid)
        take = np.sort(np.random.default_rng(0).choice(valid, min(STATS_POINTS, len(valid)), replace=False))
        raw = self.raw_at(np.stack(np.unravel_index(take, fm.shape), 1))
        std = raw.std(axis=0)
        return raw.mean(axis=0), np.where(std > 1e-6, std, 1.0).astype(np.float32)

    def at(self, points) -> np.ndarray:
        """Re-standardised context features at grid points: (n, S * dim), the columns a model is fitted on.

        Rows already computed on this matrix for these scales are reused (up to :data:`ROW_CACHE` of them): a
        refit after a new label stroke costs the stroke's points, not every labelled point again."""
        fm = self.features
        points = np.asarray(points, int).reshape(-1, 3)
        flat = np.ravel_multi_index(tuple(points.T), fm.shape) if len(points) else np.zeros(0, int)
        if not len(flat):
            return np.zeros((0, len(self.scales) * fm.dim), np.float32)
        cache = fm.__dict__.setdefault("_context_rows", {}).setdefault(self.scales, {})
        found = {f: row for f in dict.fromkeys(flat.tolist()) if (row := cache.get(f)) is not None}
        new = [f for f in dict.fromkeys(flat.tolist()) if f not in found]
        if new:
            new_pts = np.stack(np.unravel_index(np.asarray(new, int), fm.shape), 1)
            raw = self.raw_at(new_pts)
            rows = ((raw - self.mean) / self.std).reshape(len(raw), -1)
            found.update(zip(new, rows))
            if len(cache) + len(new) > ROW_CACHE:  # another thread may use the cache too: it keeps its own rows
                cache.clear()
            cache.update(zip(new, rows))
        return np.stack([found[f] for f in flat.tolist()])

    def box(self, z_outer: np.ndarray, outer, region) -> np.ndarray:
        """Re-standardised context features on a box: ``region`` (three slices of the grid), from
        ``z_outer``, the standardised vectors (invalid as 0) on ``outer``, a box around ``region`` that holds
        its :attr:`reach` (clamped at the grid's edges). Returns (region's shape..., S * dim); equal to
        :meth:`at` at the same points up to float rounding, and identical for any box holding a point."""
        keep = tuple(slice(r.start - o.start, r.stop - o.start) for r, o in zip(region, outer))
        shape = tuple(r.stop - r.start for r in region)
        out = np.empty((*shape, len(self.scales), self.features.dim), np.float32)
        for s, sigma3 in enumerate(self.scales):
            if s in self._wide:
                pooled, coarse = self._wide[s]
                out[..., s, :] = pooled.box(coarse, region)
            else:
                out[..., s, :] = smooth_box(z_outer, sigma3, keep)
        out -= self.mean
        out /= self.std
        return out.reshape(*shape, -1)
