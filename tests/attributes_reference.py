"""Frozen reference: the attribute embedder as it was before the speed-up of issue 12 (commit 4a76a9d).

Kept, unchanged but for its imports, so that ``tests/test_embed_speed.py`` can check the fast embedder
against it (same vectors within float32/int8 rounding) and ``benchmarks/bench_embed_scale.py`` can time
old against new in the same run. Not used by the package.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_seisfm.encoders.base import Embedder, ModelCard, grid_points

TRUNCATE = 3.0  # Gaussians are cut at 3 sigma: radius = int(3 * sigma + 0.5)
HILBERT_HALF = 15  # 31-tap Hamming-windowed Hilbert transformer: flat (+-2%) from 0.05 to 0.45 cycles/sample
GRAD_SIGMA = 1.0  # pre-smoothing before central-difference gradients (structure tensor)
BAND_SIGMAS = (1.0, 2.5)  # time-axis Gaussians splitting the spectrum: high | mid | low
WIDE = (8.0, 16.0)  # context scales (samples), smoothed by two box passes
GAP, WINDOWS = 6, (16, 32)  # energy above/below: samples GAP..W on each side (GAP clears the wavelet's own lobes)
EPS = 1e-3  # on standardised data (unit variance) every energy below is O(0.01 .. 1)
FLOOR = 0.05  # added to amplitudes before log ratios, so that quiet zones (water) give finite, moderate values

# name, centre, scale: feature = (raw - centre) / scale. Fixed constants: the mean and standard
# deviation of each raw attribute over six standardised synthetic surveys (96^3 and 128^3, seeds
# 0-2, stride 2; docs/feature-store.md), rounded. Features are then O(1) and centred, which matters
# because stores compare vectors by cosine; z-scores worked better than median/IQR (measured:
# heavy-tailed energies dominate under a robust scale).
FEATURES = (
    ("amplitude", 0.0, 0.86),
    ("envelope", 0.84, 0.81),
    ("cos_phase", 0.0, 0.71),
    ("sin_phase", 0.0, 0.7),
    ("inst_freq_s2", 0.11, 0.016),  # cycles per sample
    ("inst_freq_s4", 0.113, 0.01),
    ("rms_s2", 0.66, 0.55),
    ("rms_s4", 0.72, 0.48),
    ("rms_s8", 0.78, 0.39),
    ("rms_s16", 0.81, 0.31),
    ("rel_envelope", -0.14, 0.62),  # log of the envelope over the sigma-8 RMS: bright against its surroundings
    ("rel_rms_s2", -0.29, 0.47),
    ("band_low", 0.49, 0.13),  # sqrt(energy fraction) of the band, time Gaussian sigma 2.5 and below
    ("band_mid", 0.75, 0.08),
    ("band_high", 0.39, 0.073),
    ("planarity_s1", 0.85, 0.19),  # (l1 - l2) / l1 of the structure tensor: 1 on clean reflectors
    ("planarity_s2", 0.86, 0.17),
    ("linearity_s2", 0.05, 0.097),  # (l2 - l3) / l1: high at faults and chaotic zones
    ("planarity_s4", 0.87, 0.14),
    ("linearity_s4", 0.055, 0.093),
    ("dip_s2", 0.25, 0.22),  # sine of the reflector dip (from the sample axis), sigma 2
    ("planarity_n4", 0.89, 0.13),  # planarity of the tensor of unit-energy gradients: every reflector counts
    ("planarity_n8", 0.88, 0.11),
    ("linearity_n8", 0.045, 0.057),
    ("planarity_n16", 0.88, 0.08),
    ("dip_n8", 0.15, 0.12),  # sine of the regional dip
    ("discordance_n8", 0.13, 0.16),  # sine of the angle between the local (s2) and the regional reflector normal
    ("discordance_n16", 0.2, 0.19),
    ("asymmetry_16", 0.5, 1.6),  # log(energy 6..16 samples above / energy 6..16 below)
    ("asymmetry_32", 0.77, 1.27),
    ("above_rel", -0.09, 0.5),  # log of the RMS 6..16 samples above over the sigma-8 RMS
    ("below_rel", -0.32, 0.51),
)
NAMES = tuple(f[0] for f in FEATURES)
DIM = len(FEATURES)
_CENTRE = np.array([f[1] for f in FEATURES], np.float32)
_SCALE = np.array([f[2] for f in FEATURES], np.float32)


def _radius(sigma: float) -> int:
    """Reach of a smoothing of scale ``sigma``: Gaussian cut at 3 sigma, or the two box passes."""
    if sigma in WIDE:
        return _box_width(sigma) - 1
    return int(TRUNCATE * sigma + 0.5)


def _box_width(sigma: float) -> int:
    """Odd box width whose two passes (a triangle) have about the variance sigma^2: 2 (w^2 - 1) / 12."""
    w = int(round(np.sqrt(6 * sigma * sigma + 1)))
    return w if w % 2 else w + 1


def hilbert_kernel(half: int = HILBERT_HALF) -> np.ndarray:
    """FIR Hilbert transformer (ideal 2/(pi n) for odd n, Hamming window), for ``convolve1d``."""
    n = np.arange(-half, half + 1)
    k = np.zeros(n.size)
    odd = n % 2 != 0
    k[odd] = 2.0 / (np.pi * n[odd])
    return (k * np.hamming(n.size)).astype(np.float32)


DEFAULT_CARD = ModelCard(
    id="attributes",
    name="Classical seismic attributes",
    tokenization="attributes",
    dim=DIM,
    source="napari-seisfm (no weights)",
    licence="BSD-3-Clause",
    extra={"features": list(NAMES)},
)

_PAIRS = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]


class AttributeEmbedder(Embedder):
    """Local and context attributes: amplitude, complex trace, spectrum, energy, coherence, dip,
    discordance and vertical energy asymmetry at scales of 1 to 32 samples (32 dims)."""

    native_sections = True  # a block one inline or crossline wide needs no halo along that axis (module doc)

    def __init__(self, card: ModelCard | None = None):
        card = card or DEFAULT_CARD
        if card.dim != DIM:
            from napari_seisfm.errors import SeisfmError

            raise SeisfmError(f"model card {card.id!r}: dim {card.dim} but the attribute embedder produces {DIM} features")
        self.card = card
        self._hilbert = hilbert_kernel()

    @property
    def halo(self) -> tuple[int, int, int]:
        # structure tensor: pre-smoothing + central difference + the widest integration; the
        # gradient normalisation (sigma 2) happens before the integration and adds its reach
        grad = _radius(GRAD_SIGMA) + 1 + _radius(2.0)
        lat = grad + _radius(WIDE[-1])
        # time: also the energy windows (+ their sigma-1 smoothing) and the Hilbert chain
        t = max(lat, WINDOWS[-1] + _radius(1.0), HILBERT_HALF + 2 + _radius(4.0))
        return (lat, lat, t)

    def preferred_core(self) -> tuple[int, int, int]:
        """Samples per block core: large, because the context halo is wide (a 160-sample core reads
        256 samples per axis; a 128^3 cube at stride 2 is one block)."""
        return tuple(max(64, -(-10 * h // 3)) for h in self.halo)

    def embed_block(self, block: np.ndarray, stride: tuple[int, int, int]) -> np.ndarray:
        """``Embedder.embed_block``; a block of extent 1 along axis 0 and/or 1 is a section, read
        with no halo along that axis (the result of mirroring it into a laterally constant block)."""
        x = np.asarray(block, np.float32)
        flat = tuple(k for k in (0, 1) if x.ndim == 3 and x.shape[k] == 1)
        return self._embed(x, tuple(int(s) for s in stride), flat)

    def check_sections(self) -> None:
        """Any section: the attributes embed one natively (no neighbouring lines needed)."""

    def embed_sections(self, sections: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
        """Embed a stack of independent 2-D sections ``(n, trace, sample)``, each with ``halo[1:]``
        samples of context on each side, at ``stride`` (trace, sample): ``(n, gx, gt, dim)``."""
        x = np.asarray(sections, np.float32)
        if x.ndim == 2:
            x = x[None]
        return self._embed(x, (1, *(int(s) for s in stride)), (0,))

    def _embed(self, x: np.ndarray, stride: tuple[int, int, int], flat: tuple[int, ...]) -> np.ndarray:
        """The attributes at the grid points; along ``flat`` axes the block is laterally constant
        (each index is its own section): no halo, no smoothing, zero derivative."""
        halo = tuple(0 if k in flat else h for k, h in enumerate(self.halo))
        if x.ndim != 3 or any(n <= 2 * h for n, h in zip(x.shape, halo)):
            raise ValueError(f"block {x.shape} must be 3-D and larger than twice the halo {halo}")
        gshape = tuple(grid_points(n - 2 * h, s) for n, h, s in zip(x.shape, halo, stride))
        at = _Sampler(halo, stride, gshape, flat)

        def sigmas(s):  # an isotropic 3-D smoothing, none along flat axes
            return tuple(0.0 if k in flat else s for k in range(3))

        o: dict[str, np.ndarray] = {}

        # complex trace along time
        h = ndimage.convolve1d(x, self._hilbert, axis=2, mode="nearest")
        env2 = x * x + h * h
        env = np.sqrt(env2)
        o["amplitude"] = at.point(x)
        o["envelope"] = at.smooth(env, 1.0)
        e = at.point(env) + EPS
        o["cos_phase"] = at.point(x) / e
        o["sin_phase"] = at.point(h) / e
        # envelope-weighted instantaneous frequency: <x h' - h x'> / (2 pi <x^2 + h^2>)
        d = (
            np.array([-1.0, 8.0, 0.0, -8.0, 1.0], np.float32) / 12
        )  # 4th-order derivative (convolve1d order): 1% low at 0.15 cycles/sample
        num = x * ndimage.convolve1d(h, d, axis=2, mode="nearest") - h * ndimage.convolve1d(x, d, axis=2, mode="nearest")
        for s in (2.0, 4.0):
            o[f"inst_freq_s{s:.0f}"] = at.smooth(num, s) / (2 * np.pi * (at.smooth(env2, s) + EPS))
        del h, env, env2, num

        # energy: local and regional RMS, brightness relative to the region
        x2 = x * x
        for s in (2.0, 4.0, *WIDE):
            o[f"rms_s{s:.0f}"] = np.sqrt(at.smooth(x2, s))
        regional = o["rms_s8"] + FLOOR
        o["rel_envelope"] = np.log((o["envelope"] + FLOOR) / regional)
        o["rel_rms_s2"] = np.log((o["rms_s2"] + FLOOR) / regional)
        # energy above against energy below: samples GAP..W on each side, laterally smoothed
        for w, lateral in zip(WINDOWS, (2.0, 4.0)):
            up = np.zeros(2 * w + 1, np.float32)
            up[: w - GAP + 1] = 1.0 / (w - GAP + 1)  # correlate1d: weight j reads sample t + j - w
            above = at.smooth(ndimage.correlate1d(x2, up, axis=2, mode="nearest"), (lateral, lateral, 1.0))
            below = at.smooth(ndimage.correlate1d(x2, up[::-1].copy(), axis=2, mode="nearest"), (lateral, lateral, 1.0))
            o[f"asymmetry_{w}"] = np.log((above + 0.01) / (below + 0.01))
            if w == WINDOWS[0]:
                o["above_rel"] = np.log((np.sqrt(above) + FLOOR) / regional)
                o["below_rel"] = np.log((np.sqrt(below) + FLOOR) / regional)
        # spectral band energies: high | mid | low split by time-axis Gaussians, as energy fractions
        lo1 = ndimage.gaussian_filter1d(x, BAND_SIGMAS[0], axis=2, mode="nearest", truncate=TRUNCATE)
        lo2 = ndimage.gaussian_filter1d(x, BAND_SIGMAS[1], axis=2, mode="nearest", truncate=TRUNCATE)
        bands = [at.smooth(b * b, 2.0) for b in (lo2, lo1 - lo2, x - lo1)]
        total = bands[0] + bands[1] + bands[2] + EPS
        for name, b in zip(("band_low", "band_mid", "band_high"), bands):
            o[name] = np.sqrt(b / total)
        del lo1, lo2, x2, bands

        # structure tensor: gradients of the sigma-1 smoothed block; energy-weighted products at
        # sigma 1, 2, 4 (local), and products of unit-energy gradients at 4, 8, 16 (context: a weak
        # reflector counts as much as a bright one, so a bright flat event does not hide the
        # dipping layers it cuts)
        xs = ndimage.gaussian_filter(x, sigmas(GRAD_SIGMA), mode="nearest", truncate=TRUNCATE)
        dc = np.array([0.5, 0.0, -0.5], np.float32)  # central difference
        g = [None if k in flat else ndimage.convolve1d(xs, dc, axis=k, mode="nearest") for k in range(3)]  # None: zero
        del xs
        local = self._tensor(at, g, (1.0, 2.0, 4.0), gshape)
        energy = sum(gi * gi for gi in g if gi is not None)
        norm = np.sqrt(ndimage.gaussian_filter(energy, sigmas(2.0), mode="nearest", truncate=TRUNCATE))
        del energy
        norm += 0.02
        g = [None if gi is None else gi / norm for gi in g]
        del norm
        context = self._tensor(at, g, (4.0, *WIDE), gshape)
        del g
        for s, (lam, _) in local.items():
            o[f"planarity_s{s:.0f}"] = (lam[..., 2] - lam[..., 1]) / (lam[..., 2] + EPS)
            if s > 1:
                o[f"linearity_s{s:.0f}"] = (lam[..., 1] - lam[..., 0]) / (lam[..., 2] + EPS)
        for s, (lam, _) in context.items():
            o[f"planarity_n{s:.0f}"] = (lam[..., 2] - lam[..., 1]) / (lam[..., 2] + EPS)
        lam8 = context[8.0][0]
        o["linearity_n8"] = (lam8[..., 1] - lam8[..., 0]) / (lam8[..., 2] + EPS)
        n2 = local[2.0][1]  # reflector normal: eigenvector of the largest eigenvalue
        o["dip_s2"] = np.hypot(n2[..., 0], n2[..., 1])  # sine of the dip; sign-free, so both flanks of a fold look alike
        o["dip_n8"] = np.hypot(context[8.0][1][..., 0], context[8.0][1][..., 1])
        for s in WIDE:
            cos = np.abs((n2 * context[s][1]).sum(-1))
            o[f"discordance_n{s:.0f}"] = np.sqrt(np.clip(1 - cos * cos, 0, 1))

        out = np.stack([o[name] for name in NAMES], -1).astype(np.float32)
        out -= _CENTRE
        out /= _SCALE
        return out

    @staticmethod
    def _tensor(at, g, sigmas, gshape) -> dict:
        """Per sigma: eigenvalues of the gradient tensor (ascending) and the unit eigenvector of the
        largest (the reflector normal). ``g[k]`` None: zero derivative along a flat axis."""
        result = {}
        for s in sigmas:
            if all(gi is not None for gi in g):
                t = np.empty((*gshape, 3, 3), np.float32)
                for i, j in _PAIRS:
                    t[..., i, j] = t[..., j, i] = at.smooth(g[i] * g[j], s)
                lam, vec = np.linalg.eigh(t)
                result[s] = (lam, vec[..., :, 2])
            else:
                result[s] = _section_tensor(at, g, s, gshape)
        return result


def _section_tensor(at, g, s, gshape):
    """The tensor of a section: zero along the flat axis, so one eigenvalue is 0 and the rest is the
    2x2 (lateral, time) tensor, solved in closed form (float64; 20x faster than a 3x3 ``eigh``, same
    result to ~1e-7 of the largest eigenvalue). Degenerate cases follow ``eigh`` on the 3x3 tensor, so
    that the result equals the mirrored block's: an all-zero tensor (a blank image) has the time axis
    as normal, and where the box filters' rounding leaves a slightly negative 2x2 tensor (~1e-18 in a
    muted zone) the largest eigenvalue is the flat axis's 0, and the flat axis is the normal."""
    lat = 0 if g[0] is not None else 1  # the one lateral axis with a derivative (none: a single trace)
    zero = np.zeros(gshape)
    a = zero if g[lat] is None else at.smooth(g[lat] * g[lat], s).astype(np.float64)
    b = zero if g[lat] is None else at.smooth(g[lat] * g[2], s).astype(np.float64)
    c = at.smooth(g[2] * g[2], s).astype(np.float64)
    mid, r = (a + c) / 2, np.hypot((a - c) / 2, b)
    lam = np.sort(np.stack([zero, mid - r, mid + r], -1), -1).astype(np.float32)
    phi = 0.5 * np.arctan2(2 * b, c - a)  # angle of the normal from the time axis
    normal = np.zeros((*gshape, 3), np.float32)
    normal[..., lat] = np.sin(phi)
    normal[..., 2] = np.cos(phi)
    negative = mid + r < 0
    if negative.any():
        normal[negative] = np.eye(3, dtype=np.float32)[1 - lat]
    return lam, normal


class _Sampler:
    """Values of full-resolution attribute volumes at the grid points of a block."""

    def __init__(self, halo, stride, gshape, flat=()):
        self.index = [h + s * np.arange(n) for h, s, n in zip(halo, stride, gshape)]
        self.flat = flat  # axes along which the block is laterally constant: never smoothed

    def point(self, v: np.ndarray) -> np.ndarray:
        return v[np.ix_(*self.index)]

    def smooth(self, v: np.ndarray, sigma) -> np.ndarray:
        """Separable smoothing of ``v`` at the grid points: filter one axis, keep only its grid samples,
        repeat. ``sigma``: one value or one per axis (0: no smoothing along that axis); the ``WIDE``
        scales use two box passes, the others a Gaussian. Flat axes are not smoothed."""
        sigmas = (sigma,) * 3 if np.isscalar(sigma) else tuple(sigma)
        for axis in (2, 1, 0):
            s = 0.0 if axis in self.flat else float(sigmas[axis])
            if s in WIDE:
                w = _box_width(s)
                v = ndimage.uniform_filter1d(v, w, axis=axis, mode="nearest")
                v = ndimage.uniform_filter1d(v, w, axis=axis, mode="nearest")
            elif s > 0:
                v = ndimage.gaussian_filter1d(v, s, axis=axis, mode="nearest", truncate=TRUNCATE)
            if axis not in self.flat:  # a flat axis keeps every index (extent 1, or a stack of sections)
                v = np.take(v, self.index[axis], axis=axis)
        return v
