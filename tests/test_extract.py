"""Attribute embedder, feature extraction, resume, the `seisfm embed` command and the feature reader."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.cube import Cube, Geometry
from napari_seisfm.encoders.attributes import DIM, FEATURES, NAMES, AttributeEmbedder
from napari_seisfm.encoders.base import Embedder, ModelCard
from napari_seisfm.errors import SeisfmCancelled, SeisfmError
from napari_seisfm.extract import extract_features, mirror
from napari_seisfm.io import open_cube
from napari_seisfm.store.encoding import similarity_agreement
from napari_seisfm.store.volume import FeatureVolume, store_state
from napari_seisfm.synthetic import make_survey

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

_CENTRE = np.array([f[1] for f in FEATURES], np.float32)
_SCALE = np.array([f[2] for f in FEATURES], np.float32)


@pytest.fixture(scope="module")
def survey_cube():
    s = make_survey((40, 36, 64), seed=3)
    geometry = Geometry.regular(
        s.amplitude.shape, first_inline=s.first_inline, first_crossline=s.first_crossline, source="synthetic"
    )
    return Cube.from_array(s.amplitude, geometry)


def _padded(cube_array, halo):
    idx = [mirror(np.arange(-h, n + h), n) for n, h in zip(cube_array.shape, halo)]
    return cube_array[np.ix_(*idx)]


def _standardised(cube, fv):
    n = fv.normalisation
    return np.clip((cube.read() - n["mean"]) / n["std"], -3, 3).astype(np.float32)


# ------------------------------------------------------------------ attribute embedder


def test_attribute_embedder_shapes_and_card():
    emb = AttributeEmbedder()
    assert emb.dim == DIM == len(NAMES) == 32
    h = emb.halo
    rng = np.random.default_rng(0)
    block = rng.standard_normal((2 * h[0] + 9, 2 * h[1] + 8, 2 * h[2] + 13)).astype(np.float32)
    out = emb.embed_block(block, (4, 2, 3))
    assert out.shape == (3, 4, 5, 32) and out.dtype == np.float32
    assert np.isfinite(out).all()
    # the bundled card agrees with the embedder (the registry builds it from models/attributes.toml)
    from napari_seisfm.encoders.registry import get_embedder

    assert get_embedder("attributes").dim == 32
    with pytest.raises(SeisfmError, match="produces 32"):
        AttributeEmbedder(ModelCard(id="attributes", name="x", tokenization="attributes", dim=12))
    with pytest.raises(ValueError, match="halo"):
        emb.embed_block(np.zeros((10, 10, 10), np.float32), (1, 1, 1))


def test_attributes_measure_what_they_say():
    """A dipping cosine: known frequency, dip and phase; a clean plane is planar."""
    emb = AttributeEmbedder()
    f, p = 0.1, 0.5  # cycles per sample, samples of shift per inline
    i, j, t = np.meshgrid(np.arange(96), np.arange(24), np.arange(96), indexing="ij")
    x = (np.sqrt(2) * np.cos(2 * np.pi * f * (t - p * i))).astype(np.float32)  # unit variance
    out = emb.embed_block(_padded(x, emb.halo), (4, 4, 4)) * _SCALE + _CENTRE  # raw values
    # local attributes away from the mirrored cube edges; context ones (reach 48 samples) on the
    # middle inline and time only, where the mirrored (opposite) dip is out of reach
    mid = {n: out[12, :, 11:13, k] for k, n in enumerate(NAMES)}
    out = out[2:-2, 2:-2, 4:-4]
    raw = {n: out[..., k] for k, n in enumerate(NAMES)}
    assert np.allclose(raw["inst_freq_s2"], f, atol=0.005)
    assert np.allclose(raw["inst_freq_s4"], f, atol=0.005)
    assert np.allclose(raw["envelope"], np.sqrt(2), rtol=0.05)
    assert np.allclose(raw["cos_phase"] ** 2 + raw["sin_phase"] ** 2, 1, atol=0.05)
    normal = np.array([-p * 2 * np.pi * f, 0, 2 * np.pi * f])  # gradient of the phase
    normal /= np.linalg.norm(normal)
    assert np.allclose(raw["dip_s2"], abs(normal[0]), atol=0.03)  # sine of the dip
    assert np.allclose(mid["dip_n8"], abs(normal[0]), atol=0.03)
    assert raw["planarity_s2"].min() > 0.9 and raw["planarity_s4"].min() > 0.9
    assert mid["planarity_n8"].min() > 0.9 and mid["planarity_n16"].min() > 0.9
    assert raw["linearity_s2"].max() < 0.05
    assert mid["discordance_n8"].max() < 0.05 and mid["discordance_n16"].max() < 0.05  # one dip everywhere
    assert np.allclose(raw["rms_s4"], 1.0, atol=0.05) and np.allclose(raw["rms_s16"], 1.0, atol=0.05)
    assert np.abs(raw["asymmetry_16"]).max() < 0.05 and np.abs(raw["asymmetry_32"]).max() < 0.05  # as much above as below
    bands = np.stack([raw["band_low"], raw["band_mid"], raw["band_high"]], -1)
    assert np.allclose((bands**2).sum(-1), 1, atol=0.01)


def _event(t0, n=(40, 40, 96)):
    """A bright flat event (Ricker-like pulse) at sample t0: amplitude 3, width ~2 samples."""
    t = np.arange(n[2])
    a = (np.pi * 0.11 * (t - t0)) ** 2
    return np.broadcast_to((3 * (1 - 2 * a) * np.exp(-a)).astype(np.float32), n)


def test_context_attributes_tell_a_flat_spot_from_a_seabed():
    """A bright flat event cutting dipping layers (flat spot) is discordant and has energy above;
    the same event with quiet above and flat layers below (seabed) is concordant and has none."""
    emb = AttributeEmbedder()
    i, j, t = np.meshgrid(np.arange(40), np.arange(40), np.arange(96), indexing="ij")
    dipping = (0.5 * np.cos(2 * np.pi * 0.1 * (t - 0.6 * i))).astype(np.float32)
    flat = (0.5 * np.cos(2 * np.pi * 0.1 * t)).astype(np.float32)
    flat_spot = dipping + _event(48)
    seabed = np.where(t > 52, flat, 0.01 * np.cos(2 * np.pi * 0.1 * t)).astype(np.float32) + _event(48)
    raw = {}
    for name, x in (("flat_spot", flat_spot), ("seabed", seabed)):
        v = emb.embed_block(_padded(x, emb.halo), (4, 4, 4)) * _SCALE + _CENTRE
        raw[name] = {n: float(np.median(v[3:-3, 3:-3, 12, k])) for k, n in enumerate(NAMES)}  # grid sample 12 = t 48
    fs, sb = raw["flat_spot"], raw["seabed"]
    assert fs["rel_envelope"] > 0.5 and sb["rel_envelope"] > 0.5  # both bright against their surroundings
    assert fs["discordance_n16"] > sb["discordance_n16"] + 0.2  # the flat spot cuts the layering
    assert fs["planarity_n16"] < sb["planarity_n16"] - 0.1  # conflicting dips in the context
    assert sb["asymmetry_16"] < -1.5 and fs["asymmetry_16"] > -0.5  # nothing above the seabed


def test_no_seams_between_blocks(survey_cube):
    """One block or many blocks of the same (mirror-padded) cube give the same vectors."""
    emb = AttributeEmbedder()
    h, s = emb.halo, (4, 4, 4)
    x = survey_cube.read()
    x = (x - x.mean()) / x.std()
    p = _padded(x, h)
    whole = emb.embed_block(p, s)
    g = whole.shape[:3]
    cuts = [(0, 3, g[0]), (0, 4, 7, g[1]), (0, 5, g[2])]
    pieces = np.full_like(whole, np.nan)
    for (a0, a1), (b0, b1), (c0, c1) in itertools.product(*[list(zip(c[:-1], c[1:])) for c in cuts]):
        lo = (a0 * s[0], b0 * s[1], c0 * s[2])
        hi = [min(e * st, n) + 2 * hh for e, st, n, hh in zip((a1, b1, c1), s, x.shape, h)]
        pieces[a0:a1, b0:b1, c0:c1] = emb.embed_block(p[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], s)
    np.testing.assert_allclose(pieces, whole, atol=1e-5)
    # and the halo matters: a block cut with less context differs at its edge
    short = emb.embed_block(p[2:, :, :], s)
    assert not np.allclose(short[0], whole[0, : short.shape[1], : short.shape[2]], atol=1e-3)


# ------------------------------------------------------------------ extraction


def test_extract_synthetic_matches_direct_embedding(survey_cube, tmp_path):
    fv = extract_features(survey_cube, tmp_path / "f.zarr", dtype="f32", chunks=(8, 8, 8))
    assert fv.complete and fv.grid.shape == (10, 9, 16) and fv.grid.stride == (4, 4, 4)
    assert fv.progress() == (2 * 2 * 2, 8)
    assert fv.model == "attributes" and fv.dim == DIM
    assert fv.pca_components.shape == (DIM, DIM)  # nothing cut, but centred and rotated before quantising
    np.testing.assert_allclose(fv.pca_components @ fv.pca_components.T, np.eye(DIM), atol=1e-4)
    norm = fv.normalisation
    assert norm["clip"] == 3.0 and norm["std"] > 0 and norm["traces"] >= 1000
    assert fv.cube_fingerprint == survey_cube.geometry.fingerprint()
    assert fv.cube_summary["ilines"][0] == 1000
    direct = AttributeEmbedder().embed_block(_padded(_standardised(survey_cube, fv), AttributeEmbedder().halo), (4, 4, 4))
    vectors, valid = fv.load()
    assert valid.all()
    np.testing.assert_allclose(vectors, fv.project(direct.reshape(-1, DIM)), atol=1e-5)
    # int8 default: the same directions within quantisation error
    fv8 = extract_features(survey_cube, tmp_path / "i8.zarr", chunks=(5, 5, 8))
    v8, _ = fv8.load()
    assert fv8.dtype == "int8" and v8.dtype == np.int8
    direct8 = fv8.project(direct.reshape(-1, DIM))  # its own basis (fitted on its own chunks)
    assert np.abs(fv8.decode(v8) - direct8).max() < 0.01


def test_stride_per_axis_and_f3(shared_data, tmp_path):
    f3 = shared_data / "segyio-test" / "f3.sgy"
    fv = extract_features(f3, tmp_path / "f3.zarr", stride=(2, 2, 4), dtype="f16")
    cube = open_cube(f3)
    assert fv.grid.shape == (12, 9, 19) and fv.dtype == "float16"
    assert fv.cube_fingerprint == cube.geometry.fingerprint()
    v, ok = fv.load()
    assert ok.all() and np.isfinite(v.astype(np.float32)).all()
    assert np.allclose(np.linalg.norm(v.astype(np.float32), axis=1), 1, atol=2e-3)
    # neighbouring grid points are more alike than distant ones (the features carry structure)
    g = fv.decode(fv.embeddings[...])
    near = (g[:, :, :-1] * g[:, :, 1:]).sum(-1).mean()
    far = (g[:, :, :-10] * g[:, :, 10:]).sum(-1).mean()
    assert near > far + 0.2


def test_dead_traces_and_non_finite_vectors_masked(tmp_path):
    s = make_survey((32, 32, 48), seed=5)
    dead = np.zeros((32, 32), bool)
    dead[8, :] = True  # inline 8 (a grid line at stride 4) has no traces
    dead[:, 13] = True  # off the grid: must not mask anything
    amp = s.amplitude.copy()
    amp[dead] = 0
    cube = Cube.from_array(amp, Geometry.regular(amp.shape, dead=dead))
    fv = extract_features(cube, tmp_path / "d.zarr", chunks=(4, 4, 6))
    valid = np.asarray(fv.valid[...])
    assert not valid[2].any()  # grid inline 2 = cube inline 8
    assert valid[[0, 1, 3, 4, 5, 6, 7]].all()
    assert not np.asarray(fv.embeddings[2]).any()

    class Holes(AttributeEmbedder):  # a model that fails on some windows
        def embed_block(self, block, stride):
            out = super().embed_block(block, stride)
            out[0, 0, 0] = np.nan
            return out

    fv = extract_features(cube, tmp_path / "n.zarr", chunks=(4, 4, 4), embedder=Holes())
    valid = np.asarray(fv.valid[...])
    assert not valid[0, 0, 0] and not valid[4, 4, 4] and valid[1, 1, 1]


def test_resume_after_interruption(survey_cube, tmp_path):
    chunks = (4, 4, 4)  # 36 chunks, 8 of them embedded first to fit the PCA basis
    ref = extract_features(survey_cube, tmp_path / "ref.zarr", chunks=chunks)
    out = tmp_path / "part.zarr"
    seen = []

    def progress(done, total):
        seen.append((done, total))

    stop = threading.Event()

    def cancel():  # stop once 10 chunks are written (whole numbers: chunks written; fractions: within one)
        return bool(seen) and seen[-1][0] >= 10 and float(seen[-1][0]).is_integer()

    with pytest.raises(SeisfmCancelled, match="resume"):
        extract_features(survey_cube, out, chunks=chunks, progress=progress, cancel=cancel)
    assert seen[-1] == (10, 36)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never backwards, the PCA fit included
    with pytest.raises(SeisfmError, match=r"incomplete \(10/36 chunks\)"):
        FeatureVolume.open(out)
    part = FeatureVolume.open(out, allow_partial=True)
    assert not part.complete and part.progress() == (10, 36)
    with pytest.raises(SeisfmError, match="chunks missing"):
        FeatureVolume.open(out, allow_partial=True, mode="r+").mark_complete()
    seen.clear()
    fv = extract_features(survey_cube, out, chunks=chunks, progress=progress, cancel=stop)
    assert seen[0] == (10, 36) and seen[-1] == (36, 36)
    assert fv.complete
    a, va = fv.load()
    b, vb = ref.load()
    assert np.array_equal(a, b) and np.array_equal(va, vb)
    # a complete store with the same settings is returned as is
    again = extract_features(survey_cube, out, chunks=chunks)
    assert again.complete and again.progress() == (36, 36)


def test_cancel_with_event_before_start(survey_cube, tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(SeisfmCancelled, match=r"fitting the PCA basis \(0 of \d+ sample chunks kept\); run again to resume"):
        extract_features(survey_cube, tmp_path / "c.zarr", chunks=(4, 4, 4), cancel=stop)
    assert store_state(tmp_path / "c.zarr") == "missing"
    with pytest.raises(SeisfmCancelled, match="resume"):  # no basis to fit: the store exists, empty and resumable
        extract_features(survey_cube, tmp_path / "c0.zarr", chunks=(4, 4, 4), cancel=stop, pca=0)
    assert FeatureVolume.open(tmp_path / "c0.zarr", allow_partial=True).progress() == (0, 36)


def test_existing_store_rules(survey_cube, tmp_path):
    out = tmp_path / "s.zarr"
    extract_features(survey_cube, out, stride=8)
    with pytest.raises(SeisfmError, match="already exists; pass --overwrite"):
        extract_features(survey_cube, out, stride=8, resume=False)
    with pytest.raises(SeisfmError, match=r"other settings \(stride"):
        extract_features(survey_cube, out, stride=4)
    with pytest.raises(SeisfmError, match="other settings.*dtype"):
        extract_features(survey_cube, out, stride=8, dtype="f16")
    with pytest.raises(SeisfmError, match=r"other settings \(PCA on != off"):  # asked without PCA: not silently with
        extract_features(survey_cube, out, stride=8, pca=0)
    other = Cube.from_array(survey_cube.read(), Geometry.regular(survey_cube.shape, first_inline=1))
    with pytest.raises(SeisfmError, match="cube_fingerprint"):
        extract_features(other, out, stride=8)
    fv = extract_features(survey_cube, out, stride=4, overwrite=True)
    assert fv.grid.stride == (4, 4, 4) and fv.complete
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(SeisfmError, match="not a feature store; refusing"):
        extract_features(survey_cube, precious, overwrite=True)
    with pytest.raises(SeisfmError, match="not a napari-seisfm feature store|not a feature store"):
        extract_features(survey_cube, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_bad_arguments(survey_cube, tmp_path):
    with pytest.raises(SeisfmError, match="dtype"):
        extract_features(survey_cube, tmp_path / "a.zarr", dtype="f64")
    with pytest.raises(SeisfmError, match="stride"):
        extract_features(survey_cube, tmp_path / "a.zarr", stride=(4, 0, 4))
    with pytest.raises(SeisfmError, match="unknown"):
        extract_features(survey_cube, tmp_path / "a.zarr", model="no-such-model")
    with pytest.raises(SeisfmError, match="has no weights"):
        extract_features(survey_cube, tmp_path / "a.zarr", checkpoint=tmp_path / "w.pth")
    with pytest.raises(SeisfmError, match="no live traces"):
        extract_features(Cube.from_array(np.zeros((8, 8, 40), np.float32)), tmp_path / "z.zarr")
    with pytest.raises(SeisfmError, match="no such file"):
        extract_features(tmp_path / "missing.sgy", tmp_path / "a.zarr")


class Lifted(Embedder):
    """A 96-d embedder (attributes through a fixed random nonlinear map): exercises the PCA path."""

    def __init__(self):
        self.card = ModelCard(id="lifted-test", name="lifted", tokenization="attributes", dim=96)
        self.inner = AttributeEmbedder()
        self.w = np.random.default_rng(0).standard_normal((DIM, 96)).astype(np.float32) / 4

    @property
    def halo(self):
        return self.inner.halo

    def embed_block(self, block, stride):
        return np.tanh(self.inner.embed_block(block, stride) @ self.w)


def test_pca_reduction_and_agreement(survey_cube, tmp_path):
    full = extract_features(survey_cube, tmp_path / "full.zarr", embedder=Lifted(), pca=0, dtype="f32", chunks=(5, 5, 8))
    red = extract_features(survey_cube, tmp_path / "red.zarr", embedder=Lifted(), pca=12, dtype="i8", chunks=(5, 5, 8))
    assert full.dim == 96 and full.pca_components is None
    assert red.dim == 12 and red.pca_components.shape == (12, 96) and red.dtype == "int8"
    assert red._group.attrs["dim_in"] == 96
    queries = [(1, 1, 2), (5, 4, 8), (8, 7, 12)]
    same = similarity_agreement(full, full, queries)
    assert same["map_correlation_min"] > 0.9999 and same["top1%_overlap_min"] == 1.0 and same["knn10_overlap_mean"] == 1.0
    agree = similarity_agreement(full, red, queries)
    assert 0.9 < agree["map_correlation_mean"] <= 1.0
    assert 0.3 < agree["top1%_overlap_mean"] <= 1.0
    # the same model on another cube with the same grid agrees much less: the measure can tell
    other = Cube.from_array(make_survey((40, 36, 64), seed=4).amplitude, survey_cube.geometry)
    unrelated = extract_features(other, tmp_path / "o.zarr", embedder=Lifted(), pca=0, dtype="f32", chunks=(5, 5, 8))
    worse = similarity_agreement(full, unrelated, queries)
    assert worse["map_correlation_mean"] < agree["map_correlation_mean"] - 0.2
    assert worse["top1%_overlap_mean"] < agree["top1%_overlap_mean"]


# ------------------------------------------------------------------ CLI


def test_cli_embed(tmp_path, capsys):
    amp = make_survey((32, 32, 48), seed=2).amplitude
    src = tmp_path / "cube.npy"
    np.save(src, amp)
    out = tmp_path / "cube.zarr"
    assert cli(["embed", str(src), "--out", str(out), "--stride", "4,4,2", "--dtype", "f16"]) == 0
    assert "wrote" in capsys.readouterr().out
    fv = FeatureVolume.open(out)
    assert fv.grid.shape == (8, 8, 24) and fv.dtype == "float16"
    assert cli(["embed", str(src), "--out", str(out), "--stride", "4,4,2", "--dtype", "f16"]) == 0  # complete: nothing to do
    cases = [
        (["--stride", "4,x"], "--stride"),
        (["--stride", "4,4,2", "--dtype", "f16", "--no-resume"], "already exists"),
        (["--stride", "2"], "other settings"),
        (["--model", "nope"], "unknown"),
        (["--checkpoint", str(src)], "has no weights"),
        (["--batch-size", "0"], "--batch-size"),
        (["--pca", "-1"], "--pca"),
    ]
    for extra, message in cases:
        assert cli(["embed", str(src), "--out", str(out), *extra]) == 2, extra
        assert message in capsys.readouterr().err
    assert cli(["embed", str(tmp_path / "nope.sgy"), "--out", str(tmp_path / "x.zarr")]) == 2
    assert "no such file" in capsys.readouterr().err


# ------------------------------------------------------------------ reader (no viewer)


@pytest.mark.extra("napari")
def test_features_reader_layer(survey_cube, tmp_path):
    from napari_seisfm.plugin.features_reader import get_features_reader

    out = tmp_path / "r.zarr"
    fv = extract_features(survey_cube, out, stride=(4, 4, 2))
    reader = get_features_reader(str(out))
    assert reader is not None
    [(rgb, kwargs, kind)] = reader(str(out))
    assert kind == "image" and kwargs["rgb"] and rgb.shape == (*fv.grid.shape, 3)
    assert rgb.dtype == np.uint8 and kwargs["contrast_limits"] == (0, 255) and rgb.std() > 0.05 * 255
    assert not kwargs["visible"] and kwargs["opacity"] < 1  # the colours never cover the seismic by themselves
    assert kwargs["scale"] == (4.0, 4.0, 8.0)  # stride x spacing (4 ms samples)
    assert kwargs["translate"] == (1000.0, 2000.0, 0.0)
    md = kwargs["metadata"]
    assert md["path"] == str(out) and md["feature_volume"]["cube_fingerprint"] == survey_cube.geometry.fingerprint()
    assert get_features_reader(str(tmp_path)) is None
    assert get_features_reader(str(tmp_path / "missing.zarr")) is None
