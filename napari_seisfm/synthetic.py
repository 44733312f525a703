"""Synthetic 3D post-stack seismic with ground-truth labels.

The project's ground truth for tests, demos and benchmarks. The cube is built the way a geophysicist
would build a convolutional model: an acoustic impedance model (layered stratigraphy with an angular
unconformity over tilted older strata, folded and faulted by mapping coordinates, bodies inserted by
changing impedance), reflectivity ``r = diff(ln Z) / 2`` along the sample axis, convolution with a
zero-phase Ricker wavelet and band-limited noise. Everything is vectorised numpy/scipy; only the
handful of discrete objects (faults, boulders, injectites, the layers of the 1D columns) and blocks
of inlines are looped over, never voxels.

Geometry is in voxel units: inline ``i``, crossline ``j``, sample ``k``. Lateral sizes scale with the
number of inlines/crosslines, vertical sizes with the number of samples, so a 32^3 cube still holds
every feature; the wavelet and the layer thickness stay fixed in samples (they are texture, not
structure). See docs/synthetic.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from napari_seisfm.cube import Geometry
from napari_seisfm.errors import SeisfmError

CLASSES: dict[str, int] = {
    "background": 0,
    "salt": 1,
    "flat_spot": 2,
    "injectite": 3,
    "fault": 4,
    "boulder": 5,
    "channel": 6,
    "truncation": 7,
}
# Later entries overwrite earlier ones in `labels`: small, rare bodies win over big ones.
LABEL_PRIORITY: tuple[str, ...] = ("fault", "truncation", "salt", "channel", "injectite", "flat_spot", "boulder")
FEATURES: tuple[str, ...] = ("faults", "salt", "flat_spot", "injectites", "boulders", "channel", "unconformity")
MIN_SIZE = 32

# Acoustic impedance in (km/s)*(g/cc). Sediments follow a compaction trend from seabed to cube bottom.
_Z_WATER = 1.5
_Z_SEABED = 2.9
_Z_DEEP = 6.5
_Z_SALT = 9.5
_Z_BOULDER = 8.0  # glacial boulder (dense, fast) in soft clay
_BIN_M = 25.0  # trace spacing assumed for boulder diffraction hyperbolas
_V_SHALLOW = 1600.0  # m/s, rms velocity above the boulders


@dataclass
class SyntheticSurvey:
    """A synthetic cube plus everything that is true about it."""

    amplitude: np.ndarray  # float32 (n_inline, n_crossline, n_sample)
    labels: np.ndarray  # uint8, one class id per voxel, priority see LABEL_PRIORITY
    masks: dict[str, np.ndarray]  # bool per class name (not background), may overlap
    classes: dict[str, int]  # name -> id, see CLASSES
    horizons: np.ndarray  # int16 stratigraphic package index per voxel, 1.. downwards; 0 = water
    sample_interval_ms: float  # 4.0 by default
    first_inline: int  # 1000
    first_crossline: int  # 2000
    seed: int
    unconformity: np.ndarray | None = None  # float32 (n_inline, n_crossline): erosion surface, samples

    def label_names(self) -> list[str]:
        """Class names ordered by class id (index = label value)."""
        return [name for name, _ in sorted(self.classes.items(), key=lambda kv: kv[1])]

    @property
    def ilines(self) -> np.ndarray:
        return self.first_inline + np.arange(self.amplitude.shape[0])

    @property
    def xlines(self) -> np.ndarray:
        return self.first_crossline + np.arange(self.amplitude.shape[1])

    @property
    def times_ms(self) -> np.ndarray:
        return np.arange(self.amplitude.shape[2]) * self.sample_interval_ms


def ricker(peak_hz: float, dt_ms: float) -> np.ndarray:
    """Zero-phase Ricker wavelet with unit peak, sampled at dt, +-1.5 periods long."""
    half = int(np.ceil(1.5 / peak_hz * 1000.0 / dt_ms))
    t = np.arange(-half, half + 1) * dt_ms / 1000.0
    a = (np.pi * peak_hz * t) ** 2
    return ((1.0 - 2.0 * a) * np.exp(-a)).astype(np.float32)


def make_survey(
    shape=(128, 128, 128),
    seed: int = 0,
    *,
    noise: float = 0.1,
    features=FEATURES,
    sample_interval_ms: float = 4.0,
    peak_hz: float | None = None,
) -> SyntheticSurvey:
    """Build a seeded synthetic survey.

    noise: RMS of the added band-limited noise relative to the RMS of the noise-free cube (0 = clean).
    features: subset of FEATURES to insert; the layered, folded background is always there.
    peak_hz: Ricker peak frequency; default 27 Hz at 4 ms, i.e. the wavelet is fixed in samples.
    Same arguments give bit-identical output. Each feature and the noise draw from their own random
    stream, so `noise` never changes the geology and switching a feature off leaves the others in
    place (only the salt's drag on the layers goes with the salt).
    Raises SeisfmError for a shape under MIN_SIZE per axis or other bad arguments.
    """
    shape, noise, features, sample_interval_ms, peak_hz = _check_args(shape, seed, noise, features, sample_interval_ms, peak_hz)
    # == np.random.default_rng(seed).spawn(10) (same streams), written so numpy 1.24 works too. Spawning
    # one more child leaves the first ones unchanged: the unconformity (added last) moves nothing else.
    streams = [np.random.default_rng(child) for child in np.random.SeedSequence(int(seed)).spawn(10)]
    r_strat, r_fold, r_fault, r_salt, r_flat, r_inj, r_bould, r_chan, r_noise, r_unc = streams
    g = _Grid(shape)

    # --- structure: seabed, folds, salt shape (needed for drag), faults -> depositional time tau ---
    seabed = _seabed(g, r_fold)
    salt = _salt_geometry(g, r_salt, seabed)
    fold, crest = _fold_field(g, r_fold, salt if "salt" in features else None)
    faults = _fault_specs(g, r_fault) if "faults" in features else []
    k_unfaulted, fault_zone = _apply_faults(g, faults)
    # Folding grows with depth (w: 0 at the seabed, 1 at the bottom); shallow layers drape the seabed.
    sb_mean = np.float32(seabed.mean())
    w = np.clip((k_unfaulted - sb_mean) / (g.ns - sb_mean), 0.0, 1.0)
    relief = (seabed - sb_mean)[:, :, None]
    tau = k_unfaulted - sb_mean - relief + (fold[:, :, None] + relief) * w  # float32, grows downward
    del relief
    del k_unfaulted, w
    water = g.k[None, None, :] < seabed[:, :, None]

    # --- stratigraphy along tau: layers, packages and the reservoir under the anticline crest ---
    k_res = int(round(seabed[crest] + 0.58 * (g.ns - seabed[crest])))
    res_top = float(tau[crest][k_res])
    res_thick = max(10.0, 0.09 * g.ns)
    column = _column(g, r_strat, res_top, res_thick)
    log_z = column.log_impedance(tau)
    unc = _unconformity(g, r_unc, res_top) if "unconformity" in features else None
    tops = column.package_tops if unc is None else unc.package_tops(column)
    horizons = (np.searchsorted(tops, tau, side="right") + 1).astype(np.int16)
    truncation, unconformity = None, None
    if unc is not None:  # tilted older strata cut by an erosion surface above the reservoir
        truncation, unconformity = _apply_unconformity(g, unc, tau, log_z, column, horizons)
    horizons[water] = 0

    # Seabed: water above, blended over the seabed sample so the water bottom is sub-sample smooth.
    k_sb = int(np.ceil(seabed.max())) + 1
    frac_sed = np.clip(g.k[None, None, :k_sb] + 0.5 - seabed[:, :, None], 0.0, 1.0)
    log_z[:, :, :k_sb] = frac_sed * log_z[:, :, :k_sb] + (1.0 - frac_sed) * np.float32(np.log(_Z_WATER))
    del frac_sed

    masks = {name: np.zeros(shape, bool) for name in CLASSES if name != "background"}
    below = ~water
    if truncation is not None:
        masks["truncation"] = truncation & below
    # --- bodies, oldest first ---
    if "channel" in features:
        masks["channel"] = _channel(g, r_chan, tau, log_z, column) & below
    if "injectites" in features:
        masks["injectite"] = _injectites(g, r_inj, log_z) & below
    if "flat_spot" in features:
        masks["flat_spot"] = _flat_spot(g, r_flat, tau, log_z, res_top, res_thick, crest)
    if "salt" in features:
        salt_frac = salt.fraction(g) * below
        masks["salt"] = salt_frac >= 0.5
        if truncation is not None:  # the diapir pierces the unconformity: no terminations in or on it
            masks["truncation"] &= salt_frac == 0
        _salt_impedance(g, r_salt, salt_frac, log_z)
        del salt_frac
    if truncation is not None:
        _keep_cut_offs(masks["truncation"], unconformity)
    if "faults" in features:
        masks["fault"] = fault_zone & below & ~masks["salt"]
    boulders = []
    if "boulders" in features:
        masks["boulder"], boulders = _boulders(g, r_bould, seabed, log_z)
    del tau

    # --- reflectivity, diffractions, wavelet, noise ---
    refl = np.zeros(shape, np.float32)
    refl[:, :, 1:] = 0.5 * np.diff(log_z, axis=2)
    del log_z
    for b in boulders:
        _add_diffraction(g, refl, b, sample_interval_ms)
    wavelet = ricker(peak_hz, sample_interval_ms)
    amplitude = ndimage.convolve1d(refl, wavelet, axis=2, mode="constant")
    del refl
    if noise > 0:
        amplitude += _band_limited_noise(shape, r_noise, wavelet, noise, amplitude)

    labels = np.zeros(shape, np.uint8)
    for name in LABEL_PRIORITY:
        labels[masks[name]] = CLASSES[name]
    return SyntheticSurvey(
        amplitude=amplitude.astype(np.float32, copy=False),
        labels=labels,
        masks=masks,
        classes=dict(CLASSES),
        horizons=horizons,
        sample_interval_ms=float(sample_interval_ms),
        first_inline=1000,
        first_crossline=2000,
        seed=int(seed),
        unconformity=unconformity,
    )


# ----------------------------------------------------------------------------------------------
# argument checks


def survey_geometry(survey: SyntheticSurvey) -> Geometry:
    """The survey's regular geometry (inline/crossline numbering, sample interval) for writing or showing it."""
    return Geometry.regular(
        survey.amplitude.shape,
        first_inline=survey.first_inline,
        first_crossline=survey.first_crossline,
        sample_interval=survey.sample_interval_ms,
        source=f"synthetic (seed {survey.seed})",
    )


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SeisfmError(f"synthetic {what} {value!r}: expected a number") from None


def _check_args(shape, seed, noise, features, dt, peak_hz):
    """Validate and normalise the arguments of make_survey (one-line SeisfmError otherwise)."""
    try:
        shape = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise SeisfmError(f"synthetic shape {shape!r}: expected three integers") from None
    if len(shape) != 3:
        raise SeisfmError(f"synthetic shape {shape}: expected three axes (inline, crossline, sample)")
    if min(shape) < MIN_SIZE:
        raise SeisfmError(f"synthetic shape {shape}: every axis needs at least {MIN_SIZE} samples")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SeisfmError(f"synthetic seed {seed!r}: expected a non-negative integer")
    noise = _number(noise, "noise")
    if not np.isfinite(noise) or noise < 0:
        raise SeisfmError(f"synthetic noise {noise!r}: expected a non-negative number")
    features = {features} if isinstance(features, str) else set(features)
    unknown = sorted(features - set(FEATURES))
    if unknown:
        raise SeisfmError(f"synthetic features {unknown}: unknown, choose from {', '.join(FEATURES)}")
    dt = _number(dt, "sample interval")
    if not np.isfinite(dt) or dt <= 0:
        raise SeisfmError(f"synthetic sample interval {dt!r}: expected a positive number of ms")
    nyquist = 500.0 / dt
    peak_hz = 27.0 * 4.0 / dt if peak_hz is None else _number(peak_hz, "peak frequency")
    if not np.isfinite(peak_hz) or not 0 < peak_hz < nyquist / 2:
        raise SeisfmError(f"synthetic peak frequency {peak_hz!r}: expected 0 < f < {nyquist / 2:g} Hz")
    return shape, noise, features, dt, peak_hz


# ----------------------------------------------------------------------------------------------
# structure


class _Grid:
    """Voxel coordinates, kept 1D/2D and broadcast so no full-size index arrays are stored."""

    def __init__(self, shape):
        self.shape = shape
        self.ni, self.nx, self.ns = shape
        self.i = np.arange(self.ni, dtype=np.float32)[:, None]
        self.j = np.arange(self.nx, dtype=np.float32)[None, :]
        self.k = np.arange(self.ns, dtype=np.float32)
        self.nh = float(np.sqrt(self.ni * self.nx))  # lateral size scale in traces

    def lateral(self, ci, cj):
        """(di, dj) in traces from a point given as a fraction of the cube."""
        return self.i - ci * (self.ni - 1), self.j - cj * (self.nx - 1)


def _smooth_field(g: _Grid, rng, scale: float, n_waves: int = 4) -> np.ndarray:
    """Smooth 2D random field (sum of a few long-wavelength plane waves), unit-ish amplitude."""
    out = np.zeros((g.ni, g.nx), np.float32)
    for _ in range(n_waves):
        ang = rng.uniform(0, 2 * np.pi)
        lam = rng.uniform(0.6, 1.5) * scale
        ph = rng.uniform(0, 2 * np.pi)
        out += np.sin(2 * np.pi * (g.i * np.cos(ang) + g.j * np.sin(ang)) / lam + ph)
    return out / np.sqrt(n_waves / 2)


def _seabed(g: _Grid, rng) -> np.ndarray:
    """Water-bottom time in samples: ~8 % of the record, gently varying."""
    base = max(2.5, 0.08 * g.ns)
    return (base + 0.012 * g.ns * _smooth_field(g, rng, g.nh)).astype(np.float32)


def _fold_field(g: _Grid, rng, salt) -> tuple[np.ndarray, tuple[int, int]]:
    """Uplift in samples at full depth weight, and the anticline crest (i, j).

    Regional dip + a four-way anticline (the flat-spot closure) + salt drag + gentle undulation.
    """
    ci, cj = 0.3 + rng.uniform(-0.03, 0.03), 0.7 + rng.uniform(-0.03, 0.03)
    amp = max(0.28 * g.ns, 16.0)  # small cubes keep a closure deeper than the wavelet is long
    sig_i, sig_j = 0.14 * g.ni, 0.14 * g.nx
    di, dj = g.lateral(ci, cj)
    field_ = amp * np.exp(-0.5 * ((di / sig_i) ** 2 + (dj / sig_j) ** 2))
    dip = rng.uniform(0, 2 * np.pi)
    field_ = field_ + 0.02 * g.ns * ((g.i / g.ni - 0.5) * np.cos(dip) + (g.j / g.nx - 0.5) * np.sin(dip))
    field_ = field_ + 0.015 * g.ns * _smooth_field(g, rng, 0.7 * g.nh)
    if salt is not None:
        di, dj = g.lateral(salt.ci, salt.cj)
        rho = np.sqrt((di / salt.ri) ** 2 + (dj / salt.rj) ** 2)
        field_ = field_ + 0.14 * g.ns * np.exp(-0.5 * (rho / 1.1) ** 2)
    crest = (int(round(ci * (g.ni - 1))), int(round(cj * (g.nx - 1))))
    return field_.astype(np.float32), crest


@dataclass
class _FaultSpec:
    i0: float
    j0: float
    k0: float
    strike: float  # radians, direction of the fault trace in (i, j)
    tan_dip: float  # horizontal move per sample of depth (voxel units)
    half_length: float  # traces along strike where throw tapers to zero
    throw: float  # samples, maximum
    k_tip: float  # upper tip (sample); the fault dies out above
    within: int | None = None  # index of a master fault this one terminates against (its hanging wall)


def _fault_specs(g: _Grid, rng) -> list[_FaultSpec]:
    """A graben between salt and anticline plus a smaller fault in the opposite corner."""
    specs = []
    ci, cj = 0.5 + rng.uniform(-0.04, 0.04), 0.5 + rng.uniform(-0.04, 0.04)
    strike = np.pi / 4 + rng.uniform(-0.2, 0.2)
    normal = np.array([np.sin(strike), -np.cos(strike)])  # horizontal unit normal to the trace
    half_width = rng.uniform(0.06, 0.08) * g.nh
    for side in (+1, -1):  # master and antithetic dipping towards each other, a Y-shaped graben
        o = side * half_width
        specs.append(
            _FaultSpec(
                i0=ci * (g.ni - 1) + o * normal[0],
                j0=cj * (g.nx - 1) + o * normal[1],
                k0=0.65 * g.ns,
                strike=strike + np.pi if side > 0 else strike,  # dip towards the graben axis
                tan_dip=rng.uniform(0.25, 0.35),
                half_length=rng.uniform(0.32, 0.4) * g.nh,
                throw=max(3.0, rng.uniform(0.07, 0.09) * g.ns),
                k_tip=rng.uniform(0.3, 0.36) * g.ns,
                within=None if side > 0 else 0,
            )
        )
    strike3 = -np.pi / 4 + rng.uniform(-0.25, 0.25)
    specs.append(
        _FaultSpec(
            i0=(0.18 + rng.uniform(-0.03, 0.03)) * (g.ni - 1),
            j0=(0.18 + rng.uniform(-0.03, 0.03)) * (g.nx - 1),
            k0=0.65 * g.ns,
            strike=strike3 + (np.pi if rng.uniform() < 0.5 else 0.0),
            tan_dip=rng.uniform(0.25, 0.35),
            half_length=rng.uniform(0.15, 0.2) * g.nh,
            throw=max(3.0, rng.uniform(0.06, 0.08) * g.ns),
            k_tip=rng.uniform(0.32, 0.4) * g.ns,
        )
    )
    return specs


def _apply_faults(g: _Grid, faults):
    """Undo normal-fault throw: hanging-wall voxels read stratigraphy from `throw` samples higher.

    Throw is largest at the fault centre and tapers to zero at the lateral tips, grows from the upper
    tip downwards, and decays away from the plane into the hanging wall (rollover), so a fault's
    deformation stays local and does not tilt the rest of the survey. Returns the unfaulted sample
    coordinate (3D float32) and a bool zone ~3 voxels wide around each plane where it has throw.
    Only the traces and samples a fault can touch are computed (a gather per fault), which keeps
    256^3 cheap.
    """
    k_src = np.array(np.broadcast_to(g.k, g.shape), dtype=np.float32)
    zone = np.zeros(g.shape, bool)
    ramp_len = 0.2 * g.ns
    decay = 0.25 * g.nh
    planes = []  # (across 2D, tan_dip, k0) per fault, to test "in the hanging wall of" cheaply
    for f in faults:
        c, s = np.cos(f.strike), np.sin(f.strike)
        di, dj = g.i - f.i0, g.j - f.j0
        across = di * s - dj * c  # horizontal distance from the trace at k0, + = dip side
        along = (di * c + dj * s) / f.half_length
        taper = np.clip(1.0 - along**2, 0.0, 1.0)
        cos_dip = 1.0 / np.sqrt(1.0 + f.tan_dip**2)
        k_first = int(np.floor(f.k_tip))
        lo = (k_first - f.k0) * f.tan_dip - 2.0  # plane position at the upper tip, minus the zone
        hi = (g.ns - f.k0) * f.tan_dip + 6.0 * decay / cos_dip  # rollover beyond this is < 0.3 %
        ii, jj = np.nonzero((taper > 0) & (across >= lo) & (across <= hi))
        planes.append((across, f.tan_dip, f.k0))
        if ii.size == 0 or k_first >= g.ns:
            continue
        kk = g.k[k_first:]
        dist = (across[ii, jj][:, None] - (kk - f.k0) * f.tan_dip) * cos_dip  # signed distance to plane
        ramp = np.clip((kk - f.k_tip) / ramp_len, 0.0, 1.0)
        rollover = np.exp(-np.clip(dist, 0.0, None) / decay)
        throw = (f.throw * taper[ii, jj][:, None] * ramp * rollover).astype(np.float32)
        hanging = dist > 0
        active = (taper[ii, jj] > 0.05)[:, None] & (kk >= f.k_tip)
        if f.within is not None:  # terminates against the master: acts only in its hanging wall
            m_across, m_tan, m_k0 = planes[f.within]
            in_master = m_across[ii, jj][:, None] - (kk - m_k0) * m_tan > 0
            hanging &= in_master
            active &= in_master
        k_src[ii, jj, k_first:] -= np.where(hanging, throw, np.float32(0))
        zone[ii, jj, k_first:] |= (np.abs(dist) <= 1.25) & active
    return k_src, zone


# ----------------------------------------------------------------------------------------------
# stratigraphy


@dataclass
class _Column:
    """1D impedance log along depositional time tau, evaluated box-averaged over one sample."""

    tau0: float
    step: float
    box: np.ndarray  # ln Z averaged over one sample (tau-0.5 .. tau+0.5), on the fine grid
    package_tops: np.ndarray  # tau of the top of packages 2.. (searchsorted gives 1-based index)
    trend: np.ndarray  # ln Z compaction trend on the fine grid

    def _interp(self, arr, tau):
        """Linear interpolation on the uniform fine grid (index arithmetic, no binary search)."""
        x = (np.asarray(tau, np.float32) - np.float32(self.tau0)) / np.float32(self.step)
        x = np.clip(x, 0.0, arr.size - 1.001)
        i0 = x.astype(np.intp)
        f = x - i0
        arr = arr.astype(np.float32)
        return arr[i0] * (1.0 - f) + arr[i0 + 1] * f

    def log_impedance(self, tau: np.ndarray) -> np.ndarray:
        """Mean ln Z over [tau-0.5, tau+0.5]: sub-sample boundary positions, no staircase aliasing."""
        return self._interp(self.box, tau)

    def trend_at(self, tau) -> np.float32:
        return np.float32(self._interp(self.trend, tau))


def _column(g: _Grid, rng, res_top, res_thick) -> _Column:
    """Layers of random thickness and impedance, grouped into packages of distinct character.

    The tau range is fixed by the cube size (generous bounds on fold uplift and fault throw), not
    measured, so switching faults or salt on and off does not reshuffle the layering.
    """
    tau0, tau1 = -0.1 * g.ns - 8.0, 1.45 * g.ns + 24.0
    step = _COLUMN_STEP
    n = int(np.ceil((tau1 - tau0) / step)) + 1
    t = tau0 + step * np.arange(n)
    depth01 = np.clip(t / g.ns, 0.0, 1.2)
    trend = np.log(_Z_SEABED) + (np.log(_Z_DEEP) - np.log(_Z_SEABED)) * depth01**0.8

    # Package boundaries: random thicknesses, then the reservoir package forced in at the crest.
    n_pack = int(np.clip(round(g.ns / 20), 4, 14))
    cuts = np.sort(rng.uniform(0.12, 1.05, n_pack - 1)) * g.ns
    res_base = res_top + res_thick
    keep = np.abs(cuts - res_top) > 0.04 * g.ns
    keep &= np.abs(cuts - res_base) > 0.04 * g.ns
    keep &= ~((cuts > res_top) & (cuts < res_base))
    tops = np.sort(np.concatenate([cuts[keep], [res_top, res_base]]))
    res_index = int(np.searchsorted(tops, res_top, side="right"))

    # Each package: own mean layer thickness, layer contrast and impedance offset.
    n_packs = tops.size + 1
    thick = rng.uniform(2.5, 7.0, n_packs)
    contrast = rng.uniform(0.025, 0.07, n_packs)
    offset = rng.normal(0.0, 0.04, n_packs)
    offset[res_index] = -0.05  # reservoir: slightly soft, sand-prone
    contrast[res_index] = 0.04
    thick[res_index] = 3.0

    # Layers: draw more than enough thicknesses (gamma, min 1 sample) and walk down the column.
    mean_thick = float(thick.min())
    n_layers = int((tau1 - tau0) / mean_thick * 1.5) + 10
    base_thick = rng.gamma(3.0, 1.0 / 3.0, n_layers)  # mean 1, scaled per package below
    jitter = rng.normal(0.0, 1.0, n_layers)
    bounds = [tau0]
    values = []
    idx = 0
    while bounds[-1] < tau1:
        p = int(np.searchsorted(tops, bounds[-1], side="right"))
        h = max(1.0, base_thick[idx % n_layers] * thick[p])
        if p < tops.size:  # a package top is always a layer boundary
            h = min(h, tops[p] - bounds[-1])
        values.append(offset[p] + contrast[p] * jitter[idx % n_layers])
        bounds.append(bounds[-1] + h)
        idx += 1
    bounds = np.asarray(bounds)
    layer = np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, len(values) - 1)
    ln_z = trend + np.asarray(values)[layer]
    # Hard cap shale right on top of the reservoir seals the trap and makes its top a clear event.
    cap = (t >= res_top - 3.0) & (t < res_top)
    ln_z[cap] = trend[cap] + 0.06
    # box average over one sample via the cumulative integral; the column has 4 samples of margin
    cum = np.concatenate([[0.0], np.cumsum(ln_z * step)])
    half = int(round(0.5 / step))
    idx = np.clip(np.arange(n), half, n - half)
    box = (cum[idx + half] - cum[idx - half]) / (2 * half * step)
    return _Column(tau0=tau0, step=step, box=box, package_tops=tops, trend=trend)


# ----------------------------------------------------------------------------------------------
# angular unconformity

_COLUMN_STEP = 0.05  # fine grid of the 1D columns along depositional time (samples)
_TRUNC_DEPTH = 2.0  # truncation label: samples under the erosion surface ...
_TRUNC_HALF = 0.75  # ... and within this much tau' of a marker bed's top (the reflector that is cut off)


@dataclass
class _Unconformity:
    """Tilted older strata between a flat downlap base and an undulating erosion surface (in tau).

    The strata are read from their own column at tau' = tau + tilt, tilt a plane in (i, j): rigidly
    tilted, then eroded. Layers above the surface and below the base are the main column's. The
    column is tabulated on a fine grid with the main column's step, looked up by nearest index.
    """

    tau_top: np.ndarray  # float32 2D, erosion surface in depositional time
    tau_base: float  # base of the tilted unit, parallel to the layering below it
    tilt: np.ndarray  # float32 2D, tau' - tau in samples (a plane: the dip of the older strata)
    tau0: float  # tau' of the first fine-grid entry
    step: float
    ln_z: np.ndarray  # ln Z above the compaction trend (box-averaged over one sample)
    package: np.ndarray  # int, package of the tilted unit (a new one at every marker-bed top)
    marker: np.ndarray  # bool, within _TRUNC_HALF of a marker-bed top (a strong reflector)
    q0: int  # the tilted unit's package at the shallowest tau' it shows ...
    n_tilted: int  # ... and how many packages it shows (from the surface, base and tilt bounds)

    def package_tops(self, column: _Column) -> np.ndarray:
        """The main column's package tops renumbered for `horizons`: tops between the deepest point of
        the erosion surface and the base only ever fall in the tilted unit (which is numbered on its own)
        and are dropped; n_tilted + 1 tops at the base make the first package below it number
        n_upper + n_tilted + 1, n_upper being the deepest package above the surface."""
        tops = column.package_tops
        upper, lower = tops[tops <= self.tau_top.max()], tops[tops > self.tau_base]
        return np.concatenate([upper, np.full(self.n_tilted + 1, self.tau_base), lower])


def _unconformity(g: _Grid, rng, res_top: float) -> _Unconformity:
    """Erosion surface at ~34-38 % of the record in tau, under the channel and above the reservoir seal;
    below it strata dipping 17-25 degrees (in samples per trace, before folding) in a random direction:
    weak background beds plus, every 7-11 samples, a hard marker bed (ln Z +0.2-0.28) with a sharp
    top that grades back over 3-5 samples: the strong reflectors whose cut-offs are labelled. Every
    draw count depends on the grid only, so the layering does not change when other features are
    switched; only the base, kept above the reservoir seal, follows the reservoir."""
    dip = np.radians(rng.uniform(17.0, 25.0))
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    di, dj = g.lateral(0.5, 0.5)
    tilt = (np.tan(dip) * (di * np.cos(azimuth) + dj * np.sin(azimuth))).astype(np.float32)
    tau_top = rng.uniform(0.34, 0.38) * g.ns + max(0.4, 0.008 * g.ns) * _smooth_field(g, rng, 1.2 * g.nh)
    chan_top, chan_depth = _channel_tau(g)  # the channel is younger: cut into the overlying layers
    tau_top = (tau_top + max(0.0, chan_top + chan_depth + 1.0 - float(tau_top.min()))).astype(np.float32)
    seal = res_top - 3.0 - max(1.0, 0.03 * g.ns)  # keep the reservoir, its cap shale and a margin
    tau_base = max(min(float(tau_top.mean()) + 0.28 * g.ns, seal), float(tau_top.max()) + 2.5)
    tau_base = float(np.float32(tau_base))  # compared with float32 tau: no rounding between the two
    offset = rng.uniform(0.02, 0.05)

    # the tilted column, on a fine grid covering every tau' the unit can show (bounds from the grid)
    lo = float(tau_top.min() + tilt.min()) - 4.0
    hi = float(tau_top.max() + tilt.max()) + 0.28 * g.ns + 4.0
    step = _COLUMN_STEP
    n = int(np.ceil((hi - lo) / step)) + 1
    t = lo + step * np.arange(n)
    n_beds = int(hi - lo) + 2  # background beds are at least 1 sample thick
    bed_h = np.maximum(1.0, rng.gamma(3.0, 1.0 / 3.0, n_beds) * rng.uniform(2.5, 4.0))
    bed_v = rng.normal(0.0, rng.uniform(0.02, 0.03), n_beds)
    edges = lo + np.concatenate([[0.0], np.cumsum(bed_h)])
    dev = bed_v[np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_beds - 1)]
    n_mark = int((hi - lo) / 7.0) + 2
    spacing = rng.uniform(7.0, 11.0, n_mark)
    tops = lo + rng.uniform(0.0, 7.0) + np.concatenate([[0.0], np.cumsum(spacing[:-1])])
    thick = rng.uniform(3.0, 5.0, n_mark)
    amp = rng.uniform(0.2, 0.28, n_mark)
    marker = np.zeros(n, bool)
    for c, h, a in zip(tops, thick, amp):
        # sharp top (one strong reflection of the wavelet's polarity), gradational base (weak)
        i0, i1 = np.searchsorted(t, [c, c + h])
        dev[i0:i1] += a * (1.0 - (t[i0:i1] - c) / h)
        i0, i1 = np.searchsorted(t, [c - _TRUNC_HALF, c + _TRUNC_HALF])
        marker[i0:i1] = True
    cum = np.concatenate([[0.0], np.cumsum(dev * step)])
    half = int(round(0.5 / step))
    idx = np.clip(np.arange(n), half, n - half)
    box = (cum[idx + half] - cum[idx - half]) / (2 * half * step)
    package = np.searchsorted(tops, t, side="right").astype(np.int16)
    first = np.searchsorted(t, float((tau_top + tilt).min()))  # the shallowest and deepest tau' shown
    last = min(np.searchsorted(t, tau_base + float(tilt.max())), n - 1)
    q0, n_tilted = int(package[first]), int(package[last] - package[first]) + 1
    z = box + offset
    return _Unconformity(tau_top, tau_base, tilt, lo, step, z, package, marker, q0, n_tilted)


def _apply_unconformity(g: _Grid, unc: _Unconformity, tau, log_z, column: _Column, horizons):
    """Replace ln Z of the tilted unit (blended over the boundary sample), number its packages in
    `horizons` (already renumbered around it, see package_tops) and return the truncation mask and
    the erosion surface in samples per trace. Works in blocks of inlines, each on a contiguous copy of
    the sample range the unit occupies there (cache-sized), with fine-grid indices instead of
    interpolation (nearest of 0.05 sample)."""
    base = np.float32(unc.tau_base)
    half = np.float32(0.5)
    n_above = (tau < unc.tau_top[:, :, None]).sum(axis=2)  # tau grows downward in every trace
    n_base = (tau < base + half).sum(axis=2)

    # erosion surface in (sub-)samples: where tau crosses tau_top between two samples
    kk = np.clip(n_above, 1, g.ns - 1)[:, :, None]
    t_lo = np.take_along_axis(tau, kk - 1, axis=2)[..., 0]
    t_hi = np.take_along_axis(tau, kk, axis=2)[..., 0]
    w = np.clip((unc.tau_top - t_lo) / np.maximum(t_hi - t_lo, np.float32(1e-6)), 0.0, 1.0)
    surface = (kk[..., 0] - 1 + w).astype(np.float32)

    # tau' = tau + tilt as a fine-grid index: the index of tau plus a per-trace offset
    offset = np.rint((unc.tilt + np.float32(column.tau0 - unc.tau0)) / column.step).astype(np.intp)
    # packages of the tilted unit: tau' down = older, numbered after those above the surface
    n_upper = int(np.searchsorted(column.package_tops, unc.tau_top.max(), side="right")) + 1
    renumber = np.int16(n_upper + 1 - unc.q0)
    truncation = np.zeros(g.shape, bool)
    rows = max(1, 2**17 // (g.nx * max(1, int((n_base - n_above).max()) + 2)))
    for a in range(0, g.ni, rows):
        b = min(a + rows, g.ni)
        k0 = max(int(n_above[a:b].min()) - 1, 0)
        k1 = min(int(n_base[a:b].max()) + 1, g.ns)
        sl = np.s_[a:b, :, k0:k1]
        t = np.ascontiguousarray(tau[sl])
        top = unc.tau_top[a:b, :, None]

        # fraction of each sample [t - 0.5, t + 0.5] below the surface and above the base
        frac = t - top
        frac += half
        np.clip(frac, 0.0, 1.0, out=frac)
        above_base = np.subtract(base + half, t)
        np.clip(above_base, 0.0, 1.0, out=above_base)
        np.minimum(frac, above_base, out=frac)
        inside = t >= top  # exactly the comparisons the renumbered package tops make
        inside &= t < base

        u = t - np.float32(column.tau0)
        u *= np.float32(1.0 / column.step)
        u += half
        x = u.astype(np.intp)
        np.clip(x, 0, column.trend.size - 1, out=x)
        xp = offset[a:b, :, None] + x
        np.clip(xp, 0, unc.ln_z.size - 1, out=xp)

        # impedance: the older strata's layering on the trend at tau, blended over the boundary samples
        older = column.trend[x]  # float64, like log_z
        older += unc.ln_z[xp]
        lz = np.ascontiguousarray(log_z[sl])  # strided slabs are slow: read once, compute, write once
        older -= lz
        older *= frac
        lz += older
        log_z[sl] = lz

        q = unc.package[xp]
        q += renumber
        np.copyto(horizons[sl], q, where=inside)

        # truncations: where a marker bed's sharp top runs into the surface, the first ~2 samples under
        # it (in samples, not tau: faults stretch tau)
        near = g.k[k0:k1] - surface[a:b, :, None] < np.float32(_TRUNC_DEPTH)
        near &= inside
        truncation[sl] = near & unc.marker[xp]
    return truncation, surface


def _keep_cut_offs(truncation, surface):
    """Keep the pieces of the truncation mask that reach the surface (start < 1 sample under it): a
    marker bed that faults or the salt bend into the bottom of the 2-sample zone without cutting it
    off there leaves specks that are no termination. In place; connected pieces are found only in the
    thin zone under the surface."""
    ka = max(int(np.floor(surface.min())), 0)
    kb = min(int(np.ceil(surface.max())) + int(np.ceil(_TRUNC_DEPTH)) + 1, truncation.shape[2])
    zone = truncation[:, :, ka:kb]
    lab, count = ndimage.label(zone, np.ones((3, 3, 3), bool))
    if count == 0:
        return
    ii, jj, kk = np.nonzero(lab)
    piece = lab[ii, jj, kk]
    start = np.full(count + 1, np.inf)
    np.minimum.at(start, piece, kk + ka - surface[ii, jj])
    drop = start[piece] >= 1.0
    zone[ii[drop], jj[drop], kk[drop]] = False


# ----------------------------------------------------------------------------------------------
# bodies


@dataclass
class _Salt:
    ci: float  # centre, fraction of cube
    cj: float
    ri: float  # maximum radius in traces along inline / crossline
    rj: float
    k_top: np.ndarray  # 2D top time of the dome (samples), with rugosity
    cap_h: float  # samples from top to widest point
    stem: float  # stem radius as a fraction of the widest radius
    lobes: np.ndarray  # 2D angular radius factor

    def fraction(self, g: _Grid) -> np.ndarray:
        """Salt fraction per voxel of a mushroom diapir: paraboloid crest widening to a bulb, then
        narrowing to a stem. Averaged over 4 sub-samples in time so top and flanks sit at sub-sample
        times in every trace instead of a one-sample staircase. Computed only on traces under the
        salt's widest outline."""
        di, dj = g.lateral(self.ci, self.cj)
        rho = np.sqrt((di / self.ri) ** 2 + (dj / self.rj) ** 2) / self.lobes
        out = np.zeros(g.shape, np.float32)
        ii, jj = np.nonzero(rho < 1.0)
        if ii.size == 0:
            return out
        k_first = max(0, int(np.floor(self.k_top[ii, jj].min())) - 1)
        r = rho[ii, jj][:, None]
        top = self.k_top[ii, jj][:, None]
        acc = np.zeros((ii.size, g.ns - k_first), np.float32)
        for dk in (-0.375, -0.125, 0.125, 0.375):
            u = (g.k[k_first:] + np.float32(dk) - top) / self.cap_h
            cap = np.sqrt(np.clip(u, 0.0, 1.0))
            neck = self.stem + (1.0 - self.stem) * np.exp(-((np.clip(u - 1.0, 0.0, None) / 0.8) ** 2))
            acc += (u >= 0) & (r < np.where(u <= 1.0, cap, neck))
        out[ii, jj, k_first:] = acc * np.float32(0.25)
        return out


def _salt_geometry(g: _Grid, rng, seabed) -> _Salt:
    """A diapir in the (large inline, small crossline) quadrant, opposite the anticline."""
    ci, cj = 0.72 + rng.uniform(-0.04, 0.04), 0.28 + rng.uniform(-0.04, 0.04)
    r = rng.uniform(0.15, 0.18)
    top = rng.uniform(0.3, 0.36) * g.ns
    k_top = top + 0.012 * g.ns * _smooth_field(g, rng, 0.25 * g.nh)
    di, dj = g.lateral(ci, cj)
    theta = np.arctan2(dj, di)
    p2, p3 = rng.uniform(0, 2 * np.pi, 2)
    lobes = 1.0 + 0.1 * np.sin(2 * theta + p2) + 0.07 * np.sin(3 * theta + p3)
    return _Salt(
        ci=ci,
        cj=cj,
        ri=r * g.ni,
        rj=r * g.nx,
        k_top=np.maximum(k_top, seabed + 4).astype(np.float32),
        cap_h=rng.uniform(0.2, 0.26) * g.ns,
        stem=rng.uniform(0.5, 0.65),
        lobes=lobes.astype(np.float32),
    )


def _salt_impedance(g: _Grid, rng, frac, log_z):
    """Fast, homogeneous halite with a weak chaotic interior (smoothed 3D noise, ~2.5 % in ln Z),
    blended with the host by the salt fraction."""
    inside = frac > 0
    if not inside.any():
        return
    box = tuple(slice(a.min(), a.max() + 1) for a in np.nonzero(inside))
    shape = tuple(s.stop - s.start for s in box)
    chaos = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (1.5, 1.5, 0.8))
    chaos *= 0.025 / max(float(chaos.std()), 1e-6)
    f = frac[box]
    log_z[box] = (1.0 - f) * log_z[box] + f * (np.float32(np.log(_Z_SALT)) + chaos)


def _channel_tau(g: _Grid) -> tuple[float, float]:
    """Depositional time of the horizon the channel cuts into, and its incision depth (samples)."""
    return max(0.2 * g.ns, 0.12 * g.ns + 7.0), max(4.0, 0.06 * g.ns)


def _channel(g: _Grid, rng, tau, log_z, column) -> np.ndarray:
    """Sinuous channel cut into a shallow horizon, U-shaped, filled with soft homogeneous sand."""
    tau_top, depth = _channel_tau(g)
    half_w = max(2.5, 0.045 * g.nh)
    c0 = 0.5 + rng.uniform(-0.06, 0.06)
    a1, a2 = rng.uniform(0.07, 0.1), rng.uniform(0.02, 0.04)
    lam1, lam2 = rng.uniform(0.55, 0.8) * g.ni, rng.uniform(0.25, 0.35) * g.ni
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    ii = g.i[:, 0]
    centre = g.nx * (c0 + a1 * np.sin(2 * np.pi * ii / lam1 + p1) + a2 * np.sin(2 * np.pi * ii / lam2 + p2))
    slope = np.gradient(centre)
    dist = np.abs(g.j - centre[:, None]) / np.sqrt(1.0 + slope[:, None] ** 2)
    incision = depth * np.clip(1.0 - (dist / half_w) ** 2, 0.0, None)  # 2D, samples
    inside = (tau >= tau_top) & (tau < tau_top + incision[:, :, None])
    fill = column.trend_at(tau_top + 0.5 * depth) - 0.2
    fill_noise = rng.normal(0.0, 0.005, int(inside.sum())).astype(np.float32)
    log_z[inside] = fill + fill_noise
    return inside


def _injectites(g: _Grid, rng, log_z) -> np.ndarray:
    """Saucer-shaped sandstone intrusions: flat base, wings climbing steeply outwards, ~3 samples thick."""
    n = max(2, int(round(2 * g.ni * g.nx / 128**2)))
    mask = np.zeros(g.shape, bool)
    sites = [(0.78, 0.78), (0.22, 0.3)]
    for m in range(n):
        if m < len(sites):
            ci, cj = (c + rng.uniform(-0.04, 0.04) for c in sites[m])
        else:  # larger cubes: more saucers along the fault-free diagonal corners
            ci, cj = sites[m % 2][0] + rng.uniform(-0.12, 0.12), sites[m % 2][1] + rng.uniform(-0.12, 0.12)
        kb = rng.uniform(0.55, 0.65) * g.ns
        rb = rng.uniform(0.04, 0.06) * g.nh
        rw = rb + rng.uniform(0.06, 0.09) * g.nh
        rise = rng.uniform(0.1, 0.14) * g.ns
        ang = rng.uniform(0, np.pi)
        ecc = rng.uniform(0.7, 1.0)
        # work in the saucer's bounding box only
        ci, cj = ci * (g.ni - 1), cj * (g.nx - 1)
        bi = slice(max(0, int(ci - rw) - 1), min(g.ni, int(ci + rw) + 2))
        bj = slice(max(0, int(cj - rw) - 1), min(g.nx, int(cj + rw) + 2))
        bk = slice(max(0, int(kb - rise) - 2), min(g.ns, int(kb) + 3))
        di, dj = g.i[bi] - ci, g.j[:, bj] - cj
        a = di * np.cos(ang) + dj * np.sin(ang)
        b = (-di * np.sin(ang) + dj * np.cos(ang)) / ecc
        rho = np.sqrt(a**2 + b**2)
        wing = np.clip((rho - rb) / (rw - rb), 0.0, 1.0) ** 1.5
        surface = kb - rise * wing
        # ~3 samples thick measured across the sheet, so steep wings stay one connected body
        half = np.sqrt(1.0 + sum(d**2 for d in np.gradient(surface)))
        body = (np.abs(g.k[bk] - surface[:, :, None]) <= half[:, :, None]) & (rho <= rw)[:, :, None]
        mask[bi, bj, bk] |= body
    log_z[mask] -= np.float32(0.45)
    return mask


def _flat_spot(g: _Grid, rng, tau, log_z, res_top, res_thick, crest) -> np.ndarray:
    """Gas cap in the reservoir under the anticline crest; its flat base is the flat spot.

    The gas-water contact is a constant-time plane inside the reservoir. The gas column is the part of
    the reservoir above it that connects to the crest (a spill-safe closure: the contact is raised until
    the trap does not reach the cube edge). Gas lowers impedance by 28 %, so the contact gives a strong
    positive, horizontal reflection cutting the dipping reservoir layering.
    """
    top_map = (tau < res_top).sum(axis=2)  # first sample at/below reservoir top (tau grows with k)
    base_map = (tau < res_top + res_thick).sum(axis=2)
    crest_top = int(top_map[crest])
    column_h = max(5, int(round(rng.uniform(0.55, 0.7) * (base_map[crest] - crest_top))))
    contact = crest_top + column_h
    while True:
        lab, _ = ndimage.label(top_map < contact)
        trap = lab == lab[crest]
        edge = trap[0].any() or trap[-1].any() or trap[:, 0].any() or trap[:, -1].any()
        if not edge or contact <= crest_top + 2:
            break
        contact -= 1
    k = np.arange(g.ns)
    reservoir = (tau >= res_top) & (tau < res_top + res_thick)
    gas = trap[:, :, None] & reservoir & (k < contact)
    log_z[gas] += np.float32(np.log(0.72))
    # The flat spot proper: where the contact lies inside the reservoir, under at least 2 samples of
    # gas (at the trap rim the contact merges into the reservoir-top reflection).
    fluid_contact = trap & (base_map > contact) & (top_map <= contact - 2)
    mask = np.zeros(g.shape, bool)
    mask[:, :, contact - 1 : contact + 2] = fluid_contact[:, :, None]
    return mask


@dataclass
class _Boulder:
    i: int
    j: int
    k: int  # top sample
    contrast: float  # reflection coefficient at its top


_BOULDER_SAMPLES = 3  # vertical size: near tuning, so top and base reflections add up inside it


def _boulders(g: _Grid, rng, seabed, log_z):
    """Very hard small bodies 5+ samples under the seabed (glacial boulders).

    Real boulders are far below seismic resolution and act as point diffractors; here each is a
    plus-shaped footprint of 5 traces x 3 samples, the smallest body whose response fills its own mask.
    """
    n = max(6, int(round(g.ni * g.nx / 450)))
    zone = max(8.0, 0.12 * g.ns)
    plus = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)[:, :, None]
    mask = np.zeros(g.shape, bool)
    out = []
    for _ in range(n):
        i = int(rng.integers(2, g.ni - 2))
        j = int(rng.integers(2, g.nx - 2))
        k = int(np.ceil(seabed[i, j] + 5 + rng.uniform(0, zone - 5)))
        mask[i - 1 : i + 2, j - 1 : j + 2, k : k + _BOULDER_SAMPLES] |= plus
        host = float(log_z[i, j, k - 1])
        out.append(_Boulder(i, j, k, 0.5 * (np.log(_Z_BOULDER) - host)))
    log_z[mask] = np.float32(np.log(_Z_BOULDER))
    return mask, out


def _add_diffraction(g: _Grid, refl, b: _Boulder, dt_ms):
    """Diffraction hyperbola tails t(x) = sqrt(t0^2 + (2x/v)^2) from a boulder, as in unmigrated data."""
    reach = 6
    di = np.arange(-reach, reach + 1)[:, None]
    dj = np.arange(-reach, reach + 1)[None, :]
    x_m = np.sqrt(di**2 + dj**2) * _BIN_M
    t0 = b.k * dt_ms
    t = np.sqrt(t0**2 + (2000.0 * x_m / _V_SHALLOW) ** 2)
    amp = 0.35 * b.contrast * (t0 / t) ** 2
    amp[x_m < 1.2 * _BIN_M] = 0.0  # the body itself already reflects there
    ii, jj = b.i + di + 0 * dj, b.j + dj + 0 * di
    ks = t / dt_ms
    ok = (ii >= 0) & (ii < g.ni) & (jj >= 0) & (jj < g.nx) & (ks + _BOULDER_SAMPLES + 1 < g.ns) & (amp != 0)
    ii, jj, ks, amp = ii[ok], jj[ok], ks[ok], amp[ok]
    for offset, sign in ((0.0, 1.0), (float(_BOULDER_SAMPLES), -1.0)):  # top (+) and base (-)
        kk = ks + offset
        k0 = np.floor(kk).astype(int)
        w1 = (kk - k0).astype(np.float32)
        np.add.at(refl, (ii, jj, k0), sign * amp * (1 - w1))
        np.add.at(refl, (ii, jj, k0 + 1), sign * amp * w1)


def _band_limited_noise(shape, rng, wavelet, level, signal) -> np.ndarray:
    """Gaussian noise shaped by the wavelet's spectrum and slightly coherent across traces."""
    n = rng.standard_normal(shape, dtype=np.float32)
    n = ndimage.gaussian_filter(n, (0.7, 0.7, 0.0))
    n = ndimage.convolve1d(n, wavelet, axis=2, mode="constant")
    rms_sig = float(np.sqrt(np.mean(signal.astype(np.float64) ** 2)))
    rms_n = float(np.sqrt(np.mean(n.astype(np.float64) ** 2)))
    n *= np.float32(level * rms_sig / max(rms_n, 1e-12))
    return n
