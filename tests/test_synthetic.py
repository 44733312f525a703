"""Synthetic geology: determinism, contract, and that labels agree with what the amplitudes show."""

import numpy as np
import pytest
from scipy import ndimage

from napari_seisfm.errors import SeisfmError
from napari_seisfm.synthetic import CLASSES, FEATURES, LABEL_PRIORITY, MIN_SIZE, make_survey, ricker

SHAPE = (64, 64, 64)


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
        "background": 0, "salt": 1, "flat_spot": 2, "injectite": 3, "fault": 4, "boulder": 5, "channel": 6
    }
    assert s.label_names() == ["background", "salt", "flat_spot", "injectite", "fault", "boulder", "channel"]
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
    assert 30 <= survey.masks["boulder"].sum() and frac["boulder"] < 0.002
    assert 0.001 < frac["channel"] < 0.03


@pytest.mark.parametrize("seed", [0, 5])
def test_minimum_size_still_has_every_class(seed):
    s = make_survey((MIN_SIZE,) * 3, seed=seed)
    assert set(np.unique(s.labels)) == set(CLASSES.values())


def test_features_switch_independently():
    full = make_survey((48, 48, 48), seed=4)
    none = make_survey((48, 48, 48), seed=4, features=())
    assert not none.labels.any() and not any(m.any() for m in none.masks.values())
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
    top_amp = np.maximum(np.abs(survey.amplitude[ii, jj, k_top[ii, jj]]),
                         np.abs(survey.amplitude[ii, jj, np.maximum(k_top[ii, jj] - 1, 0)]))
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
    unfaulted = make_survey(SHAPE, seed=survey.seed, noise=0.1,
                            features=tuple(f for f in FEATURES if f != "faults"))
    moved = survey.horizons != unfaulted.horizons
    assert moved.mean() > 0.005, "faults must displace the stratigraphy"
    tip = np.nonzero(survey.masks["fault"].any(axis=(0, 1)))[0].min()
    assert not moved[:, :, : tip - 1].any(), "nothing moves above the upper fault tips"
    # thin zone: along any trace a fault plane occupies only a few samples
    f = survey.masks["fault"]
    runs = ndimage.label(f, np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                                      [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
                                      [[0, 0, 0], [0, 0, 0], [0, 0, 0]]]))[0]
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
        (dict(shape=(31, 64, 64)), "at least 32"),
        (dict(shape=(64, 64)), "three axes"),
        (dict(shape="big"), "three integers"),
        (dict(shape=(64, 64, 64), seed=-1), "seed"),
        (dict(shape=(64, 64, 64), noise=-0.1), "noise"),
        (dict(shape=(64, 64, 64), noise=float("nan")), "noise"),
        (dict(shape=(64, 64, 64), features=("salt", "volcano")), "volcano"),
        (dict(shape=(64, 64, 64), sample_interval_ms=0), "sample interval"),
        (dict(shape=(64, 64, 64), peak_hz=200.0), "peak frequency"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs, words):
    with pytest.raises(SeisfmError, match=words) as err:
        make_survey(**kwargs)
    assert "\n" not in str(err.value)
