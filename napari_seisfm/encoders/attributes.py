"""Classical seismic attributes as an embedding: the weight-free default embedder.

Every grid point gets 16 numbers computed from the standardised amplitude around it (the list is
``FEATURES``; docs/feature-store.md explains each one). All filters are local with a known
radius (a windowed FIR Hilbert transformer instead of the FFT one, truncated Gaussians), and all
constants are fixed, so the vector at a grid point depends only on the samples within ``halo`` of
it: a cube embedded in one block or in many blocks gives the same vectors, and a feature volume
has no seams at block edges.

Smoothed attributes are only needed at the grid points, so the last (separable) Gaussian is
applied one axis at a time and the axis is decimated right after it (``_smooth_at``): at stride 4
that costs about 1.3 full-volume passes instead of 3.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .base import Embedder, ModelCard, grid_points

TRUNCATE = 3.0  # Gaussians are cut at 3 sigma: radius = int(3 * sigma + 0.5)
HILBERT_HALF = 15  # 31-tap Hamming-windowed Hilbert transformer: flat (+-2%) from 0.05 to 0.45 cycles/sample
GRAD_SIGMA = 1.0  # pre-smoothing before central-difference gradients (structure tensor)
BAND_SIGMAS = (1.0, 2.5)  # time-axis Gaussians splitting the spectrum: high | mid | low
EPS = 1e-3  # on standardised data (unit variance) every energy below is O(0.01 .. 1)

# name, centre, scale: feature = (raw - centre) / scale. Fixed constants measured once on standardised
# data (a layered test cube, napari_seisfm.synthetic and F3; docs/feature-store.md) so features are O(1) and roughly centred,
# which matters because stores compare vectors by cosine.
FEATURES = (
    ("amplitude", 0.0, 1.0),
    ("envelope", 1.1, 0.6),
    ("cos_phase", 0.0, 0.7),
    ("sin_phase", 0.0, 0.7),
    ("inst_freq_s2", 0.093, 0.03),  # cycles per sample
    ("inst_freq_s4", 0.097, 0.025),
    ("dip_inline_s2", 0.0, 0.3),  # inline component of the unit reflector normal
    ("dip_crossline_s2", 0.0, 0.3),
    ("planarity_s2", 0.8, 0.2),  # (l1 - l2) / l1 of the structure tensor: 1 on clean reflectors
    ("linearity_s2", 0.08, 0.1),  # (l2 - l3) / l1: high at faults and chaotic zones
    ("planarity_s4", 0.85, 0.15),
    ("rms_s2", 0.9, 0.4),
    ("rms_s4", 0.9, 0.35),
    ("band_low", 0.6, 0.2),  # sqrt(energy fraction) of the band, time Gaussian sigma 2.5 and below
    ("band_mid", 0.6, 0.15),
    ("band_high", 0.37, 0.18),
)
NAMES = tuple(f[0] for f in FEATURES)
DIM = len(FEATURES)
_CENTRE = np.array([f[1] for f in FEATURES], np.float32)
_SCALE = np.array([f[2] for f in FEATURES], np.float32)


def _radius(sigma: float) -> int:
    return int(TRUNCATE * sigma + 0.5)


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


class AttributeEmbedder(Embedder):
    """Multi-scale amplitude, complex-trace, structure-tensor and spectral attributes (16 dims)."""

    def __init__(self, card: ModelCard | None = None):
        card = card or DEFAULT_CARD
        if card.dim != DIM:
            from ..errors import SeisfmError

            raise SeisfmError(f"model card {card.id!r}: dim {card.dim} but the attribute embedder produces {DIM} features")
        self.card = card
        self._hilbert = hilbert_kernel()

    @property
    def halo(self) -> tuple[int, int, int]:
        # lateral: structure tensor = pre-smoothing + central difference + integration at sigma 4
        lat = _radius(GRAD_SIGMA) + 1 + _radius(4.0)
        # time: Hilbert + derivative + sigma-4 smoothing (frequency) is the longest chain
        t = max(lat, HILBERT_HALF + 2 + _radius(4.0), _radius(BAND_SIGMAS[1]) + _radius(2.0))
        return (lat, lat, t)

    def embed_block(self, block: np.ndarray, stride: tuple[int, int, int]) -> np.ndarray:
        x = np.asarray(block, np.float32)
        halo = self.halo
        stride = tuple(int(s) for s in stride)
        if x.ndim != 3 or any(n <= 2 * h for n, h in zip(x.shape, halo)):
            raise ValueError(f"block {x.shape} must be 3-D and larger than twice the halo {halo}")
        gshape = tuple(grid_points(n - 2 * h, s) for n, h, s in zip(x.shape, halo, stride))
        at = _Sampler(halo, stride, gshape)
        out = np.empty((*gshape, DIM), np.float32)
        put = {name: i for i, name in enumerate(NAMES)}

        # complex trace along time
        h = ndimage.convolve1d(x, self._hilbert, axis=2, mode="nearest")
        env2 = x * x + h * h
        env = np.sqrt(env2)
        out[..., put["amplitude"]] = at.point(x)
        out[..., put["envelope"]] = at.smooth(env, 1.0)
        e = at.point(env) + EPS
        out[..., put["cos_phase"]] = at.point(x) / e
        out[..., put["sin_phase"]] = at.point(h) / e
        # envelope-weighted instantaneous frequency: <x h' - h x'> / (2 pi <x^2 + h^2>)
        d = np.array([-1.0, 8.0, 0.0, -8.0, 1.0], np.float32) / 12  # 4th-order derivative (convolve1d order): 1% low at 0.15 cycles/sample
        num = x * ndimage.convolve1d(h, d, axis=2, mode="nearest") - h * ndimage.convolve1d(x, d, axis=2, mode="nearest")
        d = np.array([0.5, 0.0, -0.5], np.float32)  # central difference for the structure tensor
        for s in (2.0, 4.0):
            out[..., put[f"inst_freq_s{s:.0f}"]] = at.smooth(num, s) / (2 * np.pi * (at.smooth(env2, s) + EPS))
        del h, env, num

        # local RMS energy
        x2 = x * x
        for s in (2.0, 4.0):
            out[..., put[f"rms_s{s:.0f}"]] = np.sqrt(at.smooth(x2, s))
        # spectral band energies: high | mid | low split by time-axis Gaussians, as energy fractions
        lo1 = ndimage.gaussian_filter1d(x, BAND_SIGMAS[0], axis=2, mode="nearest", truncate=TRUNCATE)
        lo2 = ndimage.gaussian_filter1d(x, BAND_SIGMAS[1], axis=2, mode="nearest", truncate=TRUNCATE)
        bands = [at.smooth(b * b, 2.0) for b in (lo2, lo1 - lo2, x - lo1)]
        total = bands[0] + bands[1] + bands[2] + EPS
        for name, b in zip(("band_low", "band_mid", "band_high"), bands):
            out[..., put[name]] = np.sqrt(b / total)
        del lo1, lo2, x2

        # structure tensor: gradients of the sigma-1 smoothed block, products integrated at sigma 2 and 4
        xs = ndimage.gaussian_filter(x, GRAD_SIGMA, mode="nearest", truncate=TRUNCATE)
        g = [ndimage.convolve1d(xs, d, axis=k, mode="nearest") for k in range(3)]
        del xs
        pairs = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
        for s in (2.0, 4.0):
            t = np.empty((*gshape, 3, 3), np.float32)
            for i, j in pairs:
                t[..., i, j] = t[..., j, i] = at.smooth(g[i] * g[j], s)
            lam, vec = np.linalg.eigh(t)  # ascending eigenvalues
            l1, l2, l3 = lam[..., 2], lam[..., 1], lam[..., 0]
            out[..., put[f"planarity_s{s:.0f}"]] = (l1 - l2) / (l1 + EPS)
            if s == 2.0:
                out[..., put["linearity_s2"]] = (l2 - l3) / (l1 + EPS)
                normal = vec[..., :, 2] * np.where(vec[..., 2:3, 2] < 0, -1.0, 1.0)  # point down the time axis
                out[..., put["dip_inline_s2"]] = normal[..., 0]
                out[..., put["dip_crossline_s2"]] = normal[..., 1]

        out -= _CENTRE
        out /= _SCALE
        return out


class _Sampler:
    """Values of full-resolution attribute volumes at the grid points of a block."""

    def __init__(self, halo, stride, gshape):
        self.index = [h + s * np.arange(n) for h, s, n in zip(halo, stride, gshape)]

    def point(self, v: np.ndarray) -> np.ndarray:
        return v[np.ix_(*self.index)]

    def smooth(self, v: np.ndarray, sigma: float) -> np.ndarray:
        """3-D Gaussian of ``v`` at the grid points: filter one axis, keep only its grid samples, repeat."""
        for axis in (2, 1, 0):
            v = ndimage.gaussian_filter1d(v, sigma, axis=axis, mode="nearest", truncate=TRUNCATE)
            v = np.take(v, self.index[axis], axis=axis)
        return v
