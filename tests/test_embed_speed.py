"""The fast attribute embedder (issue 12) gives the vectors of the frozen pre-change one.

Correctness only: the speed is measured in benchmarks/bench_embed_scale.py. The reference is the
embedder as it was before the change (tests/attributes_reference.py), run here on small cubes.
Tolerance, measured: the raw features (O(1) z-scores) agree to 1e-5 (the instantaneous frequency to
8e-6), except the two discordances, up to 1.1e-3: the reference's sqrt(1 - cos^2) of float32 unit
vectors has an error of up to sqrt(2 * 2^-23) / 0.16 = 3e-3 in feature units where the angle is
near zero (the new |a x b| does not). After the store's PCA, unit length and int8 rounding no code
moves by more than one step.
"""

from __future__ import annotations

import numpy as np
import pytest
from attributes_reference import AttributeEmbedder as ReferenceEmbedder

from napari_seisfm.cube import Cube, Geometry
from napari_seisfm.encoders.attributes import FEATURES, NAMES, AttributeEmbedder
from napari_seisfm.extract import estimate_normalisation, extract_features, mirror
from napari_seisfm.synthetic import make_survey

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

RAW_TOLERANCE = 1e-4  # feature units (z-scores); measured worst 8e-6
DISCORDANCE_TOLERANCE = 3e-3  # the reference's own rounding (module doc); measured worst 1.1e-3
TOLERANCE = np.array([DISCORDANCE_TOLERANCE if n.startswith("discordance") else RAW_TOLERANCE for n in NAMES])


def _standardised(shape, seed):
    s = make_survey(shape, seed=seed)
    cube = Cube.from_array(s.amplitude, Geometry.regular(s.amplitude.shape, source=f"synthetic seed {seed}"))
    n = estimate_normalisation(cube)
    return cube, np.clip((cube.read() - n["mean"]) / n["std"], -3, 3).astype(np.float32)


def _padded(x, halo):
    return x[np.ix_(*(mirror(np.arange(-h, n + h), n) for n, h in zip(x.shape, halo)))]


@pytest.fixture(scope="module")
def survey():
    return _standardised((36, 40, 48), seed=5)


@pytest.mark.parametrize("stride", [(4, 4, 4), (2, 3, 5)])
def test_fast_embedder_matches_the_reference(survey, stride):
    _, x = survey
    block = _padded(x, AttributeEmbedder().halo)
    new = AttributeEmbedder().embed_block(block, stride)
    old = ReferenceEmbedder().embed_block(block, stride)
    assert new.shape == old.shape and new.dtype == np.float32
    worst = np.abs(new - old).max(axis=(0, 1, 2))
    assert (worst < TOLERANCE).all(), {n: float(w) for n, w, t in zip(NAMES, worst, TOLERANCE) if w >= t}
    assert np.abs(new - old).mean() < 1e-5
    # the tolerance is not vacuous: one sample of context less changes the vectors far beyond it
    shifted = AttributeEmbedder().embed_block(block[1:, 1:, 1:], stride)
    n = tuple(min(a, b) for a, b in zip(shifted.shape[:3], new.shape[:3]))
    assert np.abs(shifted[: n[0], : n[1], : n[2]] - new[: n[0], : n[1], : n[2]]).max() > 10 * DISCORDANCE_TOLERANCE


def test_int8_codes_match_the_reference_within_one_step(survey, tmp_path):
    cube, x = survey
    fv = extract_features(cube, tmp_path / "new.zarr", stride=4)
    block = _padded(x, AttributeEmbedder().halo)
    new, ok_new = fv.encode(AttributeEmbedder().embed_block(block, (4, 4, 4)))
    old, ok_old = fv.encode(ReferenceEmbedder().embed_block(block, (4, 4, 4)))
    assert ok_new.all() and ok_old.all()
    step = np.abs(new.astype(int) - old.astype(int))
    assert step.max() <= 1
    assert (step == 0).mean() > 0.99
    stored, valid = fv.load()
    assert valid.all()
    np.testing.assert_array_equal(stored.reshape(new.shape), new)  # the store holds exactly what the fast embedder computes


def test_section_matches_the_reference_mirrored_block():
    """A 2-D line: the native section path against the reference embedder on the mirrored block
    (the 97 identical pseudo-lines the extraction used to build). A live section: no muted zone."""
    _, x = _standardised((32, 60, 72), seed=7)
    emb = AttributeEmbedder()
    h = emb.halo
    line = x[16]
    sec = line[np.ix_(mirror(np.arange(-h[1], 60 + h[1]), 60), mirror(np.arange(-h[2], 72 + h[2]), 72))]
    native = emb.embed_block(sec[None], (1, 4, 4))
    old = ReferenceEmbedder().embed_block(np.repeat(sec[None], 2 * h[0] + 1, axis=0), (1, 4, 4))
    assert native.shape == old.shape
    assert (np.abs(native - old).max(axis=(0, 1, 2)) < TOLERANCE).all()


def test_muted_zone_is_flat_in_block_and_section():
    """A constant zone (a muted water layer) has zero gradients: dip and discordance are those of a
    flat reflector (time-axis normal) in a 3-D block and in a section alike, not rounding noise."""
    emb = AttributeEmbedder()
    h = emb.halo
    block = np.full((2 * h[0] + 4, 2 * h[1] + 8, 2 * h[2] + 8), -0.7, np.float32)
    names = ["dip_s2", "dip_n8", "discordance_n8", "discordance_n16"]
    centre = {n: c for n, c, _ in FEATURES}
    scale = {n: s for n, _, s in FEATURES}
    for v in (emb.embed_block(block, (2, 2, 2)), emb.embed_block(block[:1], (1, 2, 2))):
        for name in names:
            raw = v[..., NAMES.index(name)] * scale[name] + centre[name]
            np.testing.assert_allclose(raw, 0.0, atol=1e-6, err_msg=name)


def test_chunks_in_threads_write_the_same_store_and_stop_on_cancel(tmp_path):
    """Several chunks embedded at once (workers=2) give the bytes of one-at-a-time, a cancel stops
    before the next chunk, and the stopped store resumes to the same bytes."""
    from napari_seisfm.errors import SeisfmCancelled

    cube, _ = _standardised((32, 32, 48), seed=8)
    kw = {"stride": 4, "chunks": (4, 4, 4)}  # 12 chunks: the PCA fit's 8 first, then 4 in threads
    one = extract_features(cube, tmp_path / "one.zarr", workers=1, **kw)
    seen = []

    def stop():  # once a chunk after the PCA fit's is written (whole numbers: chunks written)
        return bool(seen) and seen[-1] >= 9 and float(seen[-1]).is_integer()

    with pytest.raises(SeisfmCancelled, match="resume"):
        extract_features(cube, tmp_path / "two.zarr", workers=2, progress=lambda d, t: seen.append(d), cancel=stop, **kw)
    assert seen[-1] == 9
    two = extract_features(cube, tmp_path / "two.zarr", workers=2, **kw)
    assert one.progress() == two.progress() == (12, 12)
    a, va = one.load()
    b, vb = two.load()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(va, vb)
