"""Classical seismic attributes as an embedding: the weight-free default embedder.

Every grid point gets 32 numbers computed from the standardised amplitude around it (the list is
``FEATURES``; docs/feature-store.md explains each one). They come in two kinds:

- *local* attributes (sigma 1-4 samples): amplitude, complex trace, instantaneous frequency,
  spectral bands, local energy and structure-tensor coherence: what the reflection at the point
  looks like;
- *context* attributes (sigma 8-16 samples, windows up to 32 samples): regional energy, the
  brightness of the point relative to it, coherence of the layering with every reflector counting
  alike (normalised gradients), the angle between the local and the regional dip (discordance), and
  the energy above against the energy below. These tell a bright flat event that cuts dipping
  layers (a flat spot) from a bright flat event that the layers follow (the seabed, a strong
  horizon), and a chaotic body (salt) from faulted but layered rock.

All filters have a known reach (a windowed FIR Hilbert transformer instead of the FFT one,
truncated Gaussians, box filters, fixed windows) and all constants are fixed, so the vector at a
grid point depends only on the samples within ``halo`` of it: a cube embedded in one block or in
many blocks gives the same vectors, and a feature volume has no seams at block edges. No absolute
position (time, depth, inline) enters any attribute.

Smoothed attributes are only needed at the grid points, so the last (separable) smoothing runs one
axis at a time and the axis is decimated right after it (``_Sampler.smooth``). The wide (sigma 8
and 16) smoothings use two passes of a box filter, whose cost does not grow with the width (a
triangle kernel; scipy's running-sum ``uniform_filter1d``), instead of a 97-tap Gaussian.

A 2-D section (a block one inline or one crossline wide, or an image) is embedded natively, with no
halo along the missing axis: the extraction used to mirror a single line into ``2 * halo + 1``
identical pseudo-lines (97 times the work), which is a laterally constant medium. Along such a
*flat* axis every smoothing is the identity and the derivative is zero, so the native path skips
both and gives the mirrored result to float32 rounding (bitwise equal in the tests).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from ..progress import step
from .base import Embedder, ModelCard, grid_points

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


STAGES = 9  # progress steps of one block (`progress.step` between the stages of `_embed`)


class AttributeEmbedder(Embedder):
    """Local and context attributes: amplitude, complex trace, spectrum, energy, coherence, dip,
    discordance and vertical energy asymmetry at scales of 1 to 32 samples (32 dims)."""

    native_sections = True  # a block one inline or crossline wide needs no halo along that axis (module doc)
    parallel_blocks = True  # embed_block keeps no state and its numpy/BLAS work releases the GIL: chunks run in threads

    def __init__(self, card: ModelCard | None = None):
        card = card or DEFAULT_CARD
        if card.dim != DIM:
            from ..errors import SeisfmError

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
        (each index is its own section): no halo, no smoothing, zero derivative.

        Full-resolution fields are computed only over the region their consumers read: the local
        ones (complex trace, bands, the sigma 1-4 tensor) within ``LOCAL`` samples of the grid
        points, the context ones within the reach of the widest smoothing (module doc)."""
        halo = tuple(0 if k in flat else h for k, h in enumerate(self.halo))
        if x.ndim != 3 or any(n <= 2 * h for n, h in zip(x.shape, halo)):
            raise ValueError(f"block {x.shape} must be 3-D and larger than twice the halo {halo}")
        x = np.ascontiguousarray(x, np.float32)
        gshape = tuple(grid_points(n - 2 * h, s) for n, h, s in zip(x.shape, halo, stride))
        at = _Sampler(x.shape, halo, stride, gshape, flat)
        o: dict[str, np.ndarray] = {}
        step(0, STAGES)  # may stop here (cancel) before any work

        # complex trace along time, on the lateral crop the local smoothings read (time: whole traces)
        loc = at.crop(LOCAL, axes=(0, 1))
        xl = np.ascontiguousarray(x[loc.region])
        h = loc.filter(xl, (("convolve", self._hilbert),), 2)
        env2 = xl * xl + h * h
        env = np.sqrt(env2)
        o["amplitude"] = at.point(x)
        o["envelope"] = loc.smooth(env, 1.0)
        e = loc.point(env) + EPS
        o["cos_phase"] = o["amplitude"] / e
        o["sin_phase"] = loc.point(h) / e
        # envelope-weighted instantaneous frequency: <x h' - h x'> / (2 pi <x^2 + h^2>)
        d = (("convolve", _DERIVATIVE),)
        num = xl * loc.filter(h, d, 2) - h * loc.filter(xl, d, 2)
        for s in (2.0, 4.0):
            o[f"inst_freq_s{s:.0f}"] = loc.smooth(num, s) / (2 * np.pi * (loc.smooth(env2, s) + EPS))
        del h, env, env2, num
        step(1, STAGES)
        # spectral band energies: high | mid | low split by time-axis Gaussians, as energy fractions
        lo1 = loc.filter(xl, (("gauss", BAND_SIGMAS[0]),), 2)
        lo2 = loc.filter(xl, (("gauss", BAND_SIGMAS[1]),), 2)
        bands = [loc.smooth(b * b, 2.0) for b in (lo2, lo1 - lo2, xl - lo1)]
        total = bands[0] + bands[1] + bands[2] + EPS
        for name, b in zip(("band_low", "band_mid", "band_high"), bands):
            o[name] = np.sqrt(b / total)
        del lo1, lo2, xl, bands
        step(2, STAGES)

        # energy: local and regional RMS, brightness relative to the region
        x2 = x * x
        for s in (2.0, 4.0, *WIDE):
            o[f"rms_s{s:.0f}"] = np.sqrt(at.smooth(x2, s))
        step(3, STAGES)
        regional = o["rms_s8"] + FLOOR
        o["rel_envelope"] = np.log((o["envelope"] + FLOOR) / regional)
        o["rel_rms_s2"] = np.log((o["rms_s2"] + FLOOR) / regional)
        # energy above against energy below: samples GAP..W on each side, laterally smoothed; the
        # window and the time smoothing are one linear operator along time, applied at the grid only
        for w, lateral in zip(WINDOWS, (2.0, 4.0)):
            up = np.zeros(2 * w + 1, np.float32)
            up[: w - GAP + 1] = 1.0 / (w - GAP + 1)  # correlate1d: weight j reads sample t + j - w
            above, below = (at.smooth(x2, (lateral, lateral, (("correlate", k), ("gauss", 1.0)))) for k in (up, up[::-1].copy()))
            o[f"asymmetry_{w}"] = np.log((above + 0.01) / (below + 0.01))
            if w == WINDOWS[0]:
                o["above_rel"] = np.log((np.sqrt(above) + FLOOR) / regional)
                o["below_rel"] = np.log((np.sqrt(below) + FLOOR) / regional)
        del x2
        step(4, STAGES)

        # structure tensor: gradients of the sigma-1 smoothed block; energy-weighted products at
        # sigma 1, 2, 4 (local), and products of unit-energy gradients at 4, 8, 16 (context: a weak
        # reflector counts as much as a bright one, so a bright flat event does not hide the
        # dipping layers it cuts)
        # (difference first, then smooth: the same linear operator, but a constant zone such as a
        # muted water layer then has exactly zero gradients and tensors, whatever the rounding of the
        # smoothing, so its normal is always the time axis, in a block and in a section alike)
        g = [None if k in flat else _central_difference(x, k) for k in range(3)]  # None: zero
        for k in range(3):
            for axis in range(3):
                if g[k] is not None and axis not in flat:
                    g[k] = at.filter(g[k], (("gauss", GRAD_SIGMA),), axis)
        step(5, STAGES)
        near = at.crop(LOCAL)
        local = self._tensor(near, [None if gi is None else gi[near.region] for gi in g], (1.0, 2.0, 4.0), gshape)
        energy = sum(gi * gi for gi in g if gi is not None)
        norm = energy
        for k in range(3):
            if k not in flat:
                norm = at.filter(norm, (("gauss", 2.0),), k)
        del energy
        step(6, STAGES)
        np.sqrt(norm, out=norm)
        norm += 0.02
        wide = at.crop(_radius(WIDE[-1]))
        norm = norm[wide.region]
        g = [None if gi is None else gi[wide.region] / norm for gi in g]
        del norm
        step(7, STAGES)
        context = self._tensor(wide, g, (4.0, *WIDE), gshape)
        del g
        step(8, STAGES)
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
        for s in WIDE:  # sine of the angle between unit normals: |a x b| (sqrt(1 - cos^2) loses digits near 0)
            o[f"discordance_n{s:.0f}"] = np.minimum(np.linalg.norm(np.cross(n2, context[s][1]), axis=-1), 1)

        out = np.stack([o[name] for name in NAMES], -1).astype(np.float32)
        out -= _CENTRE
        out /= _SCALE
        return out

    @staticmethod
    def _tensor(at, g, sigmas, gshape) -> dict:
        """Per sigma: eigenvalues of the gradient tensor (ascending) and the unit eigenvector of the
        largest (the reflector normal). ``g[k]`` None: zero derivative along a flat axis. One
        ``eigh`` call for every sigma (the same stacked 3x3 problems as one per sigma)."""
        if not all(gi is not None for gi in g):
            return {s: _section_tensor(at, g, s, gshape) for s in sigmas}
        t = np.empty((len(sigmas), *gshape, 3, 3), np.float32)
        for i, j in _PAIRS:
            product = g[i] * g[j]
            for n, s in enumerate(sigmas):
                t[n, ..., i, j] = t[n, ..., j, i] = at.smooth(product, s)
            del product
        lam, vec = np.linalg.eigh(t)
        return {s: (lam[n], vec[n, ..., :, 2]) for n, s in enumerate(sigmas)}


def _central_difference(v: np.ndarray, axis: int) -> np.ndarray:
    """``convolve1d(v, [0.5, 0, -0.5], axis, mode="nearest")`` by slicing (bitwise the same: halving is exact)."""
    out = np.empty_like(v)
    a = np.moveaxis(v, axis, 0)
    b = np.moveaxis(out, axis, 0)
    np.subtract(a[2:], a[:-2], out=b[1:-1])
    b[0] = a[1] - a[0]
    b[-1] = a[-1] - a[-2]
    out *= 0.5
    return out


_DERIVATIVE = (
    np.array([-1.0, 8.0, 0.0, -8.0, 1.0], np.float32) / 12
)  # 4th-order derivative (convolve1d order): 1% low at 0.15 cycles/sample
LOCAL = _radius(4.0)  # reach of the widest local smoothing: local fields are computed this far from the grid only


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


# ---------------------------------------------------------------------------- linear filters as matrices


def _steps(sigma) -> tuple:
    """The filter steps of a smoothing of scale ``sigma`` along one axis: two box passes for the
    ``WIDE`` scales, a truncated Gaussian otherwise, nothing at 0; a tuple of steps passes through."""
    if isinstance(sigma, tuple):
        return sigma
    s = float(sigma)
    if s in WIDE:
        return (("box", _box_width(s)), ("box", _box_width(s)))
    return (("gauss", s),) if s > 0 else ()


def _key(steps) -> tuple:
    return tuple((name, arg.tobytes() if isinstance(arg, np.ndarray) else arg) for name, arg in steps)


def _operator(n: int, steps: tuple, start: int, step: int, count: int) -> _Operator:
    return _operator_cached(n, _key(steps), start, step, count)


@functools.lru_cache(maxsize=512)
def _operator_cached(n, key, start, step, count):
    """The matrix of ``steps`` (scipy's own filters, mode "nearest", applied to the identity, so edges
    and kernels are exactly those of filtering the whole axis) keeping rows ``start::step``."""
    m = np.eye(n)
    for name, arg in key:
        if name == "gauss":
            m = ndimage.gaussian_filter1d(m, arg, axis=0, mode="nearest", truncate=TRUNCATE)
        elif name == "box":
            m = ndimage.uniform_filter1d(m, arg, axis=0, mode="nearest")
        else:  # "convolve" / "correlate" with a kernel given as bytes of float32
            kernel = np.frombuffer(arg, np.float32).astype(np.float64)
            m = (ndimage.convolve1d if name == "convolve" else ndimage.correlate1d)(m, kernel, axis=0, mode="nearest")
    m = m[start : start + step * (count - 1) + 1 : step]
    m[np.abs(m) < 1e-9 * np.abs(m).max()] = 0  # the running sums' rounding residue (1e-18) is not reach
    return _Operator(m.astype(np.float32))


class _Operator:
    """A filter along one axis followed by keeping some outputs, as a banded matrix applied in row
    tiles (each tile multiplies only the input columns its band touches): one BLAS call per tile."""

    TILE = 32

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        self.tiles = []
        nz = matrix != 0
        for r0 in range(0, len(matrix), self.TILE):
            cols = np.flatnonzero(nz[r0 : r0 + self.TILE].any(0))
            c0, c1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 1)
            self.tiles.append(
                (r0, min(r0 + self.TILE, len(matrix)), c0, c1, np.ascontiguousarray(matrix[r0 : r0 + self.TILE, c0:c1]))
            )
        self.lo = min(t[2] for t in self.tiles)
        self.hi = max(t[3] for t in self.tiles)

    def apply(self, v: np.ndarray, axis: int, origin: int = 0) -> np.ndarray:
        """Apply along ``axis`` to ``v``, whose index 0 on that axis is column ``origin``."""
        if self.lo < origin or self.hi > origin + v.shape[axis]:
            raise ValueError(f"operator reads columns {self.lo}..{self.hi}, the field covers {origin}..{origin + v.shape[axis]}")
        step()  # a point where extraction may stop (Cancel) inside a long stage
        shape = list(v.shape)
        shape[axis] = len(self.matrix)
        out = np.empty(shape, np.float32)
        for r0, r1, c0, c1, m in self.tiles:
            c0, c1 = c0 - origin, c1 - origin
            if axis == 0:
                out[r0:r1] = (m @ v[c0:c1].reshape(c1 - c0, -1)).reshape(r1 - r0, *shape[1:])
            elif axis == 1:
                out[:, r0:r1] = np.matmul(m, v[:, c0:c1])
            else:
                flat = v.reshape(-1, v.shape[2]) if v.flags.c_contiguous else None
                if flat is not None:
                    out[..., r0:r1] = (flat[:, c0:c1] @ m.T).reshape(*shape[:2], r1 - r0)
                else:
                    out[..., r0:r1] = np.matmul(v[..., c0:c1], m.T)
        return out


class _Sampler:
    """Filters on a block, and their values at the grid points. A sampler may be a crop of the
    block (``region``): fields then cover only the crop and filters read only inside it."""

    def __init__(self, shape, halo, stride, gshape, flat=(), region=None):
        self.shape, self.stride, self.gshape, self.flat = tuple(shape), tuple(stride), tuple(gshape), tuple(flat)
        self.index = [h + s * np.arange(n) for h, s, n in zip(halo, stride, gshape)]
        self.halo = tuple(halo)
        self.region = region or tuple(slice(0, n) for n in shape)

    def crop(self, margin: int, axes=(0, 1, 2)) -> _Sampler:
        """The same grid, with fields covering only ``margin`` samples around the grid points along ``axes``."""
        region = []
        for k, (n, idx) in enumerate(zip(self.shape, self.index)):
            if k in axes and k not in self.flat:
                region.append(slice(max(0, int(idx[0]) - margin), min(n, int(idx[-1]) + margin + 1)))
            else:
                region.append(slice(0, n))
        return _Sampler(self.shape, self.halo, self.stride, self.gshape, self.flat, tuple(region))

    def point(self, v: np.ndarray) -> np.ndarray:
        return v[np.ix_(*(i - r.start for i, r in zip(self.index, self.region)))]

    def filter(self, v: np.ndarray, steps: tuple, axis: int) -> np.ndarray:
        """Full-resolution filter of a field along one axis (edges: "nearest", of the crop)."""
        n = v.shape[axis]
        return _operator(n, steps, 0, 1, n).apply(v, axis)

    def smooth(self, v: np.ndarray, sigma) -> np.ndarray:
        """Separable smoothing of ``v`` at the grid points: filter one axis keeping only its grid
        samples, repeat. ``sigma``: one value or one per axis (0: none; a tuple of steps: that filter);
        the ``WIDE`` scales use two box passes, the others a Gaussian. Flat axes are not smoothed. The
        filters see the whole block axis (edges as on the block), and read only near the grid."""
        sigmas = tuple(sigma) if isinstance(sigma, (list, tuple)) else (sigma,) * 3
        ops = {}
        for axis in (2, 1, 0):
            if axis in self.flat:
                continue
            idx = self.index[axis]
            ops[axis] = _operator(self.shape[axis], _steps(sigmas[axis]), int(idx[0]), self.stride[axis], len(idx))
        # read only the columns the operators touch
        if any(ops[k].lo < self.region[k].start or ops[k].hi > self.region[k].stop for k in ops):
            raise ValueError(f"smoothing {sigma} reads outside the field's region {self.region}")
        view = tuple(
            slice(ops[k].lo - r.start, ops[k].hi - r.start) if k in ops else slice(None) for k, r in enumerate(self.region)
        )
        origin = [ops[k].lo if k in ops else 0 for k in range(3)]
        v = v[view]
        for axis in (2, 1, 0):
            if axis in ops:
                v = ops[axis].apply(v, axis, origin[axis])
        return v
