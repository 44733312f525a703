"""Synthetic geology: determinism, contract, and that labels agree with what the amplitudes show."""

import hashlib
import platform

import numpy as np
import pytest
import scipy
from scipy import ndimage

from napari_seisfm.errors import SeisfmError
from napari_seisfm.synthetic import CLASSES, FEATURES, LABEL_PRIORITY, MIN_SIZE, make_survey, ricker

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

SHAPE = (64, 64, 64)
# the features that existed before the unconformity: with these the survey is what it always was
OLD_FEATURES = ("faults", "salt", "flat_spot", "injectites", "boulders", "channel")


@pytest.fixture(scope="module", params=[0, 1, 2])
def survey(request):
    return make_survey(SHAPE, seed=request.param, noise=0.1)


@pytest.fixture(scope="module")
def clean():
    return make_survey(SHAPE, seed=7, noise=0.0)


def _background(s):
    """Sediment voxels (below seabed) that carry no feature label."""
    return (s.labels == 0) & (s.horizons > 0)


def _same_time_mean_abs(s, mask):
    """Mean |amplitude| of background sediments in the time window that `mask` occupies."""
    ks = np.nonzero(mask.any(axis=(0, 1)))[0]
    win = slice(ks.min(), ks.max() + 1)
    return float(np.abs(s.amplitude[:, :, win][_background(s)[:, :, win]]).mean())


def _seabed(s):
    """First sediment sample per trace (horizons is 0 in the water)."""
    return (s.horizons == 0).sum(axis=2)


# --- contract -----------------------------------------------------------------------------------


def test_shapes_dtypes_and_geometry():
    s = make_survey((40, 56, 48), seed=3, sample_interval_ms=2.0)
    assert s.amplitude.shape == s.labels.shape == s.horizons.shape == (40, 56, 48)
    assert s.amplitude.dtype == np.float32 and s.labels.dtype == np.uint8 and s.horizons.dtype == np.int16
    assert np.isfinite(s.amplitude).all()
    assert s.classes == {
        "background": 0,
        "salt": 1,
        "flat_spot": 2,
        "injectite": 3,
        "fault": 4,
        "boulder": 5,
        "channel": 6,
        "truncation": 7,
    }
    assert s.label_names() == ["background", "salt", "flat_spot", "injectite", "fault", "boulder", "channel", "truncation"]
    assert s.unconformity.shape == (40, 56) and s.unconformity.dtype == np.float32
    assert set(s.masks) == set(CLASSES) - {"background"}
    assert all(m.dtype == bool and m.shape == s.amplitude.shape for m in s.masks.values())
    assert (s.sample_interval_ms, s.first_inline, s.first_crossline, s.seed) == (2.0, 1000, 2000, 3)
    assert s.ilines[0] == 1000 and s.ilines[-1] == 1039 and s.xlines[-1] == 2055
    assert s.times_ms[1] == 2.0


def test_deterministic_and_seed_dependent():
    a, b = make_survey((48, 48, 48), seed=11), make_survey((48, 48, 48), seed=11)
    assert np.array_equal(a.amplitude, b.amplitude)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.horizons, b.horizons)
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert np.array_equal(a.unconformity, b.unconformity)
    c = make_survey((48, 48, 48), seed=12)
    assert not np.array_equal(a.amplitude, c.amplitude)
    assert not np.array_equal(a.labels, c.labels)


def test_labels_follow_masks_and_priority(survey):
    expected = np.zeros(SHAPE, np.uint8)
    for name in LABEL_PRIORITY:  # later wins
        expected[survey.masks[name]] = CLASSES[name]
    assert np.array_equal(survey.labels, expected)
    assert not (survey.labels[survey.horizons == 0]).any(), "no feature in the water column"


def test_every_class_present_with_plausible_size(survey):
    counts = np.bincount(survey.labels.ravel(), minlength=len(CLASSES)) / survey.labels.size
    frac = dict(zip(survey.label_names(), counts))
    assert frac["background"] > 0.8
    assert 0.01 < frac["salt"] < 0.1
    assert 0.001 < frac["flat_spot"] < 0.02
    assert 0.0005 < frac["injectite"] < 0.02
    assert 0.01 < frac["fault"] < 0.08
    assert survey.masks["boulder"].sum() >= 30 and frac["boulder"] < 0.002
    assert 0.001 < frac["channel"] < 0.03
    assert 0.001 < frac["truncation"] < 0.015


@pytest.mark.parametrize("seed", [0, 5])
def test_minimum_size_still_has_every_class(seed):
    s = make_survey((MIN_SIZE,) * 3, seed=seed)
    assert set(np.unique(s.labels)) == set(CLASSES.values())


def test_features_switch_independently():
    full = make_survey((48, 48, 48), seed=4)
    none = make_survey((48, 48, 48), seed=4, features=())
    assert not none.labels.any() and not any(m.any() for m in none.masks.values())
    assert none.unconformity is None
    only = make_survey((48, 48, 48), seed=4, features=("boulders", "injectites"))
    assert set(np.unique(only.labels)) == {0, CLASSES["boulder"], CLASSES["injectite"]}
    # each feature has its own random stream: switching others off does not move it
    assert np.array_equal(only.masks["boulder"], full.masks["boulder"])
    assert np.array_equal(only.masks["injectite"], full.masks["injectite"])


# --- labels agree with the amplitudes ---------------------------------------------------------------


def test_flat_spot_is_bright_flat_and_cuts_dipping_layers(survey):
    fs = survey.masks["flat_spot"]
    ks = np.nonzero(fs.any(axis=(0, 1)))[0]
    assert ks.max() - ks.min() <= 2, "a fluid contact is horizontal: one time, +-1 sample"
    # in the section, not at the top or bottom
    assert 0.3 * SHAPE[2] < ks.mean() < 0.9 * SHAPE[2]
    ratio = np.abs(survey.amplitude[fs]).mean() / _same_time_mean_abs(survey, fs)
    assert ratio > 1.8, f"flat spot only {ratio:.2f}x brighter than sediments at its time"
    # the contact lies inside one package (the reservoir), whose top dips across the footprint
    kc = int(np.median(ks))
    foot = fs.any(axis=2)
    pkg = survey.horizons[:, :, kc][foot]
    assert np.bincount(pkg).argmax() > 0 and (pkg == np.bincount(pkg).argmax()).mean() > 0.95
    res = np.bincount(pkg).argmax()
    top = np.argmax(survey.horizons == res, axis=2)[foot]  # first sample of the reservoir
    assert top.max() - top.min() >= 2, "reservoir top should dip across the flat spot"
    assert (top < kc).all(), "the flat spot is under gas, below the reservoir top"


def test_flat_spot_sits_at_a_crest_away_from_salt(survey):
    fs, salt = survey.masks["flat_spot"], survey.masks["salt"]
    assert not (fs & salt).any()
    foot_fs, foot_salt = fs.any(axis=2), salt.any(axis=2)
    gap = ndimage.distance_transform_edt(~foot_salt)[foot_fs].min()
    assert gap > 5, f"flat spot only {gap:.1f} traces from the salt"
    # crest: the reservoir top is shallowest inside the footprint, deeper just outside it
    kc = int(np.median(np.nonzero(fs.any(axis=(0, 1)))[0]))
    res = np.bincount(survey.horizons[:, :, kc][fs.any(axis=2)]).argmax()
    top = np.argmax(survey.horizons == res, axis=2).astype(float)
    ring = ndimage.binary_dilation(foot_fs, iterations=4) & ~ndimage.binary_dilation(foot_fs, iterations=2)
    ring &= ~foot_salt & ~survey.masks["fault"].any(axis=2)
    assert top[foot_fs].mean() < top[ring].mean() - 1


def test_salt_interior_is_quiet_and_its_top_is_bright(survey):
    salt = survey.masks["salt"]
    inner = ndimage.binary_erosion(salt, np.ones((5, 5, 13), bool))
    assert inner.sum() > 100
    ks = np.nonzero(inner.any(axis=(0, 1)))[0]
    win = slice(ks.min(), ks.max() + 1)
    rms_salt = np.sqrt(np.mean(survey.amplitude[inner] ** 2))
    sed = survey.amplitude[:, :, win][_background(survey)[:, :, win]]
    rms_sed = np.sqrt(np.mean(sed**2))
    assert rms_salt < 0.65 * rms_sed, f"salt interior rms {rms_salt:.3f} vs sediments {rms_sed:.3f}"
    # top of salt: the first salt sample in each trace, and the one above it
    has = salt.any(axis=2)
    k_top = np.argmax(salt, axis=2)
    ii, jj = np.nonzero(has)
    top_amp = np.maximum(
        np.abs(survey.amplitude[ii, jj, k_top[ii, jj]]), np.abs(survey.amplitude[ii, jj, np.maximum(k_top[ii, jj] - 1, 0)])
    )
    top_mask = np.zeros_like(salt)
    top_mask[ii, jj, k_top[ii, jj]] = True
    assert top_amp.mean() > 2.0 * _same_time_mean_abs(survey, top_mask)


def test_boulders_are_bright_and_shallow(survey):
    b = survey.masks["boulder"]
    ratio = np.abs(survey.amplitude[b]).mean() / _same_time_mean_abs(survey, b)
    assert ratio > 2.5, f"boulders only {ratio:.2f}x brighter than sediments at their time"
    ii, jj, kk = np.nonzero(b)
    below_seabed = kk - _seabed(survey)[ii, jj]
    assert below_seabed.min() >= 4 and below_seabed.max() <= max(12, 0.15 * SHAPE[2]) + 3
    assert (kk < 0.3 * SHAPE[2]).all()


def test_injectites_are_bright_saucers(survey):
    inj = survey.masks["injectite"]
    ratio = np.abs(survey.amplitude[inj]).mean() / _same_time_mean_abs(survey, inj)
    assert ratio > 1.5
    lab, n = ndimage.label(inj)
    assert n >= 2
    for obj in ndimage.find_objects(lab):
        depth_span = obj[2].stop - obj[2].start
        width = max(obj[0].stop - obj[0].start, obj[1].stop - obj[1].start)
        if width >= 8:  # a body not clipped to a sliver by the cube edge
            assert depth_span >= 5, "saucer wings climb above the flat base"


def test_faults_offset_layers_and_are_thin(survey):
    unfaulted = make_survey(SHAPE, seed=survey.seed, noise=0.1, features=tuple(f for f in FEATURES if f != "faults"))
    moved = survey.horizons != unfaulted.horizons
    assert moved.mean() > 0.005, "faults must displace the stratigraphy"
    tip = np.nonzero(survey.masks["fault"].any(axis=(0, 1)))[0].min()
    assert not moved[:, :, : tip - 1].any(), "nothing moves above the upper fault tips"
    # thin zone: along any trace a fault plane occupies only a few samples
    f = survey.masks["fault"]
    runs = ndimage.label(
        f, np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 0, 0], [1, 1, 1], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]])
    )[0]
    lengths = np.bincount(runs.ravel())[1:]
    assert np.median(lengths) <= 12


def test_channel_is_sinuous_and_crosses_the_survey(survey):
    ch = survey.masks["channel"]
    ii = np.nonzero(ch.any(axis=(1, 2)))[0]
    assert ii.size > 0.8 * SHAPE[0], "the channel runs across the survey"
    centre = np.array([np.nonzero(ch[i].any(axis=1))[0].mean() for i in ii])
    assert np.ptp(centre) > 5, "a sinuous channel wanders across crosslines"
    kk = np.nonzero(ch)[2]
    assert kk.max() < 0.6 * SHAPE[2], "shallow channel"


# --- angular unconformity and truncations ----------------------------------------------------------


def _k_under_surface(s):
    """Samples under the erosion surface, per voxel (negative above it)."""
    return np.arange(s.amplitude.shape[2])[None, None, :] - s.unconformity[:, :, None]


def _local_dip(amp, lo, hi):
    """Dip (dk/di, dk/dj) of the events between samples lo and hi (2D, per trace) from the gradient
    structure tensor summed over the window and 7x7 traces: for f(k - p.x), g_i = -p_i g_k."""
    gi, gj, gk = np.gradient(amp.astype(np.float64))
    k = np.arange(amp.shape[2])
    win = (k >= lo[:, :, None]) & (k < hi[:, :, None])

    def total(a):
        return ndimage.uniform_filter((a * win).sum(axis=2), 7)

    gkk = total(gk * gk)
    return np.stack([-total(gi * gk) / gkk, -total(gj * gk) / gkk])


@pytest.mark.parametrize("n, seed", [(64, 0), (64, 1), (64, 2), (64, 3), (96, 0), (96, 1), (96, 2)])
def test_truncation_class_exists_along_the_unconformity(n, seed):
    s = make_survey((n, n, n), seed=seed)
    trunc = s.labels == CLASSES["truncation"]
    assert trunc.sum() > 0.002 * n**3 / 2, "truncations are labelled"
    # several separate cut-offs (one per marker bed crossing the surface), each a thin line-like body
    lab, count = ndimage.label(trunc, np.ones((3, 3, 3), bool))
    assert count >= 3
    ii, jj, kk = np.nonzero(trunc)
    assert np.ptp(kk) < 0.4 * n, "all on one surface, not spread through the section"
    assert trunc.sum(axis=2).max() <= 2, "at most ~2 samples per trace"


def test_truncations_lie_just_under_the_unconformity(survey):
    tr = survey.masks["truncation"]
    under = _k_under_surface(survey)[tr]
    assert under.min() >= 0 and under.max() < 2.0, "within 2 samples under the erosion surface"
    # every cut-off touches the surface (the reflector runs into it) ...
    lab, count = ndimage.label(tr, np.ones((3, 3, 3), bool))
    starts = ndimage.minimum(_k_under_surface(survey), lab, np.arange(1, count + 1))
    assert (np.asarray(starts) < 1.0).all()
    # ... sits in the sediments below the seabed, between the channel above and the reservoir below,
    # and not in the salt that pierces the surface
    assert not (tr & survey.masks["salt"]).any()
    ch = survey.masks["channel"]
    assert (_k_under_surface(survey)[ch] < 0).all(), "the channel is cut into the younger layers"
    fs = survey.masks["flat_spot"]
    assert (_k_under_surface(survey)[fs] > 5).all(), "the reservoir lies well below the unconformity"
    assert (survey.unconformity > _seabed(survey) + 5).all()


def test_truncations_sit_on_the_bright_reflectors_that_are_cut_off(survey):
    """The label is where the amplitude shows the terminations: on the peaks of the hard marker beds
    (harder below: positive), brighter than the rest of the 2-sample zone under the surface. Measured
    away from the bodies (salt, injectites, faults, ...) whose own reflections cross that zone."""
    under = _k_under_surface(survey)
    bodies = (survey.labels != 0) & (survey.labels != CLASSES["truncation"])
    away = ~ndimage.binary_dilation(bodies.any(axis=2), iterations=3)[:, :, None]
    tr = (survey.labels == CLASSES["truncation"]) & away
    zone = (under >= 0) & (under < 2) & (survey.labels == 0) & away
    assert tr.sum() > 100
    assert (survey.amplitude[tr] > 0).mean() > 0.9, "on peaks"
    ratio = np.abs(survey.amplitude[tr]).mean() / np.abs(survey.amplitude[zone]).mean()
    assert ratio > 1.3, f"truncation labels only {ratio:.2f}x brighter than the rest of the surface"


@pytest.mark.parametrize("n, seed", [(64, 0), (64, 2), (96, 1)])
def test_layers_dip_below_the_unconformity_and_not_above(n, seed):
    """Structure-tensor dip of the events 3-10 samples under the surface and 5-12 over it
    (beyond the side lobes of the bright reflections just under it), compared with the same
    survey without the unconformity (same folding, faulting and drag): below, the layering turns by
    the tilt in one direction everywhere; above, the layering is what it was (parallel to the surface)."""
    on = make_survey((n, n, n), seed=seed, noise=0.1)
    off = make_survey((n, n, n), seed=seed, noise=0.1, features=OLD_FEATURES)
    ks = np.rint(on.unconformity).astype(int)
    bodies = np.zeros(on.amplitude.shape, bool)
    for name in ("fault", "salt", "injectite", "boulder", "channel"):
        bodies |= on.masks[name]
    quiet = ~ndimage.binary_dilation(bodies.any(axis=2), iterations=4)
    quiet[:4] = quiet[-4:] = False
    quiet[:, :4] = quiet[:, -4:] = False
    assert quiet.sum() > 200
    turn = {}
    for where, lo, hi in (("above", ks - 12, ks - 5), ("below", ks + 3, ks + 10)):
        d = (_local_dip(on.amplitude, lo, hi) - _local_dip(off.amplitude, lo, hi))[:, quiet]
        turn[where] = np.median(np.linalg.norm(d, axis=0)), np.linalg.norm(d.mean(axis=1))
    # tan(17..25 deg) = 0.31..0.47 samples per trace before folding stretches the section
    assert turn["below"][0] > 0.2 and turn["below"][1] > 0.2, turn
    assert turn["above"][0] < 0.08, turn
    # and in the amplitude itself: the events under the surface cross those over it at an angle
    up = _local_dip(on.amplitude, ks - 12, ks - 5)[:, quiet]
    down = _local_dip(on.amplitude, ks + 3, ks + 10)[:, quiet]
    assert np.median(np.linalg.norm(down - up, axis=0)) > 0.15


def test_horizons_follow_depositional_order(survey):
    h = survey.horizons.astype(int)
    assert (np.diff(h, axis=2) >= 0).all(), "package ids never decrease downwards: younger on top"
    ks = np.ceil(survey.unconformity).astype(int)[:, :, None]
    over = np.take_along_axis(h, ks - 1, axis=2)
    under = np.take_along_axis(h, ks, axis=2)
    assert over.max() < under.min(), "every package under the erosion surface is older than those over it"
    # the surface cuts across several older, tilted packages: their ids change along it
    under = under[..., 0]
    assert len(np.unique(under)) >= 3
    changes = (under[1:] != under[:-1]).sum() + (under[:, 1:] != under[:, :-1]).sum()
    assert changes / (under[1:].size + under[:, 1:].size) > 0.02
    # above the surface the packages are the ones the survey had without the unconformity
    off = make_survey(SHAPE, seed=survey.seed, noise=0.1, features=OLD_FEATURES)
    above = _k_under_surface(survey) < 0
    assert np.array_equal(survey.horizons[above], off.horizons[above])


def test_unconformity_moves_no_other_feature():
    on = make_survey(SHAPE, seed=3, noise=0.0)
    off = make_survey(SHAPE, seed=3, noise=0.0, features=OLD_FEATURES)
    for name in on.masks:
        if name != "truncation":
            assert np.array_equal(on.masks[name], off.masks[name]), name
    assert not off.masks["truncation"].any() and off.unconformity is None
    # the section above the unconformity is untouched (beyond the wavelet's reach of the surface)
    shallow = int(np.floor(on.unconformity.min())) - ricker(27.0, 4.0).size // 2 - 2
    assert shallow > 5
    assert np.array_equal(on.amplitude[:, :, :shallow], off.amplitude[:, :, :shallow])
    # and the truncations have their own random stream: other features do not move them
    alone = make_survey(SHAPE, seed=3, features=("unconformity",))
    with_bodies = make_survey(SHAPE, seed=3, features=("unconformity", "channel", "injectites", "boulders"))
    assert np.array_equal(alone.masks["truncation"], with_bodies.masks["truncation"])
    assert alone.masks["truncation"].any()


# sha256 (first 16 hex digits) of make_survey(SHAPE, seed, features=OLD_FEATURES) computed with the
# generator as it was before the unconformity existed: integer outputs (labels, horizons, masks in
# name order) and the float32 amplitude, plus float64 sums of the amplitude (sum, sum |a|, sum a^2).
_BEFORE = {
    0: ("48d9cd6621a897c9", "79635aa6c0a278a7", (359.0063078685271, 12752.616832249572, 1570.7839135853383)),
    1: ("29a909e7d18bc68e", "8557b5ef623a79fb", (315.84332455216827, 13776.70616128135, 1861.1374070785496)),
}
_BEFORE_ENV = ("2.4.6", "1.17.1", "x86_64")  # numpy, scipy, machine the hashes were made with


@pytest.mark.parametrize("seed", sorted(_BEFORE))
def test_unconformity_off_gives_the_old_survey_bit_for_bit(seed):
    s = make_survey(SHAPE, seed=seed, features=OLD_FEATURES)
    ints, amp, sums = _BEFORE[seed]
    a = s.amplitude.astype(np.float64)
    assert np.allclose((a.sum(), np.abs(a).sum(), (a * a).sum()), sums, rtol=1e-6, atol=0)
    if (np.__version__, scipy.__version__, platform.machine()) != _BEFORE_ENV:
        pytest.skip("bit-level hashes are pinned for numpy/scipy " + "/".join(_BEFORE_ENV) + "; sums match")

    def digest(arrays):
        h = hashlib.sha256()
        for x in arrays:
            h.update(np.ascontiguousarray(x).tobytes())
        return h.hexdigest()[:16]

    old_classes = sorted(name for name in CLASSES if name not in ("background", "truncation"))
    assert digest([s.labels, s.horizons] + [s.masks[name] for name in old_classes]) == ints
    assert digest([s.amplitude]) == amp


# --- wavelet and noise ----------------------------------------------------------------------------


def test_ricker_is_zero_phase_unit_peak():
    w = ricker(27.0, 4.0)
    assert w.size % 2 == 1 and w[w.size // 2] == pytest.approx(1.0)
    assert np.allclose(w, w[::-1])
    assert abs(w.sum()) < 0.05 * np.abs(w).sum()  # no DC


@pytest.mark.parametrize("level", [0.05, 0.3, 1.0])
def test_noise_level_is_rms_ratio_and_band_limited(clean, level):
    noisy = make_survey(SHAPE, seed=7, noise=level)
    assert np.array_equal(noisy.labels, clean.labels) and np.array_equal(noisy.horizons, clean.horizons)
    diff = noisy.amplitude.astype(np.float64) - clean.amplitude
    rms = lambda x: np.sqrt(np.mean(np.square(x, dtype=np.float64)))  # noqa: E731
    assert rms(diff) / rms(clean.amplitude) == pytest.approx(level, rel=1e-3)
    assert rms(noisy.amplitude) > rms(clean.amplitude)
    # band-limited: the noise spectrum peaks near the wavelet's 27 Hz, little above 80 Hz
    spec = (np.abs(np.fft.rfft(diff, axis=2)) ** 2).mean(axis=(0, 1))
    freqs = np.fft.rfftfreq(SHAPE[2], 0.004)
    assert 15 < freqs[spec.argmax()] < 40
    assert spec[freqs > 80].sum() < 0.05 * spec.sum()


def test_more_noise_hides_the_flat_spot_contrast(clean):
    def contrast(s):
        fs = s.masks["flat_spot"]
        return np.abs(s.amplitude[fs]).mean() / _same_time_mean_abs(s, fs)

    assert contrast(clean) > contrast(make_survey(SHAPE, seed=7, noise=1.0)) * 1.3


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"shape": (31, 64, 64)}, "at least 32"),
        ({"shape": (64, 64)}, "three axes"),
        ({"shape": "big"}, "three integers"),
        ({"shape": (64, 64, 64), "seed": -1}, "seed"),
        ({"shape": (64, 64, 64), "noise": -0.1}, "noise"),
        ({"shape": (64, 64, 64), "noise": float("nan")}, "noise"),
        ({"shape": (64, 64, 64), "features": ("salt", "volcano")}, "volcano"),
        ({"shape": (64, 64, 64), "sample_interval_ms": 0}, "sample interval"),
        ({"shape": (64, 64, 64), "peak_hz": 200.0}, "peak frequency"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs, words):
    with pytest.raises(SeisfmError, match=words) as err:
        make_survey(**kwargs)
    assert "\n" not in str(err.value)
