"""2-D images and sections: the image-set loader, embed_images, and the attribute embedder's native
section path against the mirrored pseudo-inlines it replaces."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import ndimage

from napari_seisfm.cube import Cube, Geometry
from napari_seisfm.encoders.attributes import _CENTRE, _SCALE, NAMES, AttributeEmbedder
from napari_seisfm.errors import SeisfmCancelled, SeisfmError
from napari_seisfm.extract import extract_features, mirror
from napari_seisfm.images import ImageSet, embed_images, load_image_set, standardise

EMB = AttributeEmbedder()
H = EMB.halo


def _section(shape, seed=0, muted=True):
    """A layered-looking standardised section (trace, sample) with halo; optionally constant
    (muted) zones at the bottom and on the right, where the structure tensor is degenerate."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.standard_normal(shape), (3, 1))
    x = np.clip(x / x.std(), -3, 3).astype(np.float32)
    if muted:
        x[:, -(H[2] + 60) :] = 0.3
        x[-(H[1] + 20) :, :] = 0.3
    return x


def _mirrored(section):
    """What extraction used to embed for a single line: 2 * halo + 1 identical pseudo-inlines."""
    return np.ascontiguousarray(np.broadcast_to(section, (2 * H[0] + 1, *section.shape)))


def _assert_close(a, ref):
    np.testing.assert_allclose(a, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


# -- native section path == mirrored block ------------------------------------------------------


@pytest.mark.parametrize("stride", [(1, 1), (2, 3)])
def test_native_section_equals_mirrored_block(stride):
    sec = _section((30 + 2 * H[1], 100 + 2 * H[2]))
    ref = EMB.embed_block(_mirrored(sec), (1, *stride))
    native = EMB.embed_block(sec[None], (4, *stride))  # any stride along the one-line axis
    assert native.shape == ref.shape == (1, -(-30 // stride[0]), -(-100 // stride[1]), len(NAMES))
    _assert_close(native, ref)  # bitwise equal in practice (measured)
    # a single crossline is the same section with the lateral axes swapped
    crossline = EMB.embed_block(sec[:, None], (stride[0], 5, stride[1]))
    _assert_close(crossline.transpose(1, 0, 2, 3), ref)
    # a stack of sections is embedded section by section
    other = _section(sec.shape, seed=1, muted=False)
    stack = EMB.embed_sections(np.stack([sec, other]), stride)
    _assert_close(stack[:1], ref)
    _assert_close(stack[1:], EMB.embed_block(_mirrored(other), (1, *stride)))


def test_native_section_equals_mirrored_block_in_a_muted_zone(shared_data):
    """The Penobscot line's muted top (constant after standardisation): the box filters' running
    sums leave ~1e-18 of rounding there, the 2x2 tensor comes out slightly negative, and the
    mirrored block's 3x3 ``eigh`` takes the flat axis (eigenvalue 0) as the normal. The native path
    must do the same (it once gave discordances 2.4 away here)."""
    from napari_seisfm.extract import estimate_normalisation
    from napari_seisfm.io import open_cube

    path = shared_data / "real" / "penobscot_xl1155.sgy"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open_cube(path) as cube:
        n = estimate_normalisation(cube)
        line = np.clip((cube[:, 0, :] - n["mean"]) / n["std"], -3, 3).astype(np.float32)
    rows = mirror(np.arange(250 - H[1], 330 + H[1]), line.shape[0])
    cols = mirror(np.arange(-H[2], 120 + H[2]), line.shape[1])
    sec = line[np.ix_(rows, cols)]
    _assert_close(EMB.embed_block(sec[None], (1, 4, 4)), EMB.embed_block(_mirrored(sec), (1, 4, 4)))


class _Given:
    """A sampler whose smoothing returns prescribed tensor entries, in the order they are asked for."""

    def __init__(self, *entries):
        self.entries = list(entries)

    def smooth(self, v, sigma):
        return self.entries.pop(0)


def test_section_tensor_matches_eigh_of_the_3x3_tensor():
    from napari_seisfm.encoders.attributes import _section_tensor

    rng = np.random.default_rng(6)
    g = rng.standard_normal((3, 500, 4))
    a, b, c = (g[0] * g[0]).sum(-1), (g[0] * g[1]).sum(-1), (g[1] * g[1]).sum(-1)  # PSD 2x2 tensors
    tiny = -1e-18 * rng.random((3, 50))  # rounding residue in a muted zone: slightly negative definite
    a, b, c = (np.concatenate([x, t * (1 if k != 1 else 0.1), [0.0]]) for k, (x, t) in enumerate(zip((a, b, c), tiny)))
    a, b, c = (x.astype(np.float32)[None, :, None] for x in (a, b, c))
    for lat in (0, 1):  # the lateral axis with a derivative; the other one is flat
        grads = [None, None, np.ones(1)]
        grads[lat] = np.ones(1)
        lam, normal = _section_tensor(_Given(a, b, c), grads, 1.0, a.shape)
        t = np.zeros((*a.shape, 3, 3), np.float32)
        t[..., lat, lat], t[..., 2, 2] = a, c
        t[..., lat, 2] = t[..., 2, lat] = b
        ref_lam, ref_vec = np.linalg.eigh(t)
        np.testing.assert_allclose(lam, ref_lam, rtol=1e-5, atol=1e-6 * np.abs(ref_lam).max())
        np.testing.assert_allclose(np.abs((normal * ref_vec[..., :, 2]).sum(-1)), 1.0, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1])
def test_extract_single_line_cube_matches_mirrored_extraction(tmp_path, axis):
    class Mirrored(AttributeEmbedder):
        native_sections = False  # the old path: halo read along the one-line axis, mirrored

    line = _section((40, 90), seed=2, muted=False)
    shape = (1, 40, 90) if axis == 0 else (40, 1, 90)
    cube = Cube.from_array(line.reshape(shape), Geometry.regular(shape))
    kw = {"stride": (1, 3, 2), "pca": 0, "dtype": "f32"}
    fast = extract_features(cube, tmp_path / "fast.zarr", **kw)
    slow = extract_features(cube, tmp_path / "slow.zarr", embedder=Mirrored(), **kw)
    (a, ok_a), (b, ok_b) = fast.load(), slow.load()
    assert ok_a.all() and ok_b.all()
    _assert_close(a, b)


# -- loader --------------------------------------------------------------------------------------


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 5, 7)).astype(np.uint8)  # rows = depth, as displayed
    masks = (images > 128).astype(np.uint8)
    p = _npz(tmp_path / "set.npz", images=images, masks=masks, ids=np.array(["a", "b", "c"]), depth_ft=np.array([1, 2, 3]))
    s = load_image_set(p)
    assert isinstance(s, ImageSet) and len(s) == 3 and s.name == "set"
    assert s.images.dtype == np.float32 and s.images.shape == (3, 7, 5)  # cube order: (trace, sample)
    np.testing.assert_array_equal(s.images, images.transpose(0, 2, 1))
    assert np.issubdtype(s.masks.dtype, np.integer)
    np.testing.assert_array_equal(s.masks, masks.transpose(0, 2, 1))
    assert list(s.ids) == ["a", "b", "c"]
    np.testing.assert_array_equal(s.extra["depth_ft"], [1, 2, 3])
    no_ids = load_image_set(_npz(tmp_path / "bare.npz", images=images, masks=masks.astype(bool)))
    assert list(no_ids.ids) == ["0", "1", "2"]


def _bad_cases(tmp_path):
    ok_i, ok_m = np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8)
    nan = np.zeros((2, 4, 4), np.float32)
    nan[1, 2, 2] = np.nan
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip archive at all")
    np.save(tmp_path / "single.npy", ok_i)
    return {
        "missing": (tmp_path / "nope.npz", "no such file"),
        "not npz": (tmp_path / "junk.npz", "not a readable .npz"),
        "npy": (tmp_path / "single.npy", "not an .npz"),
        "no images": (_npz(tmp_path / "a.npz", masks=ok_m), "no 'images' array"),
        "no masks": (_npz(tmp_path / "b.npz", images=ok_i), "no 'masks' array"),
        "shapes": (_npz(tmp_path / "c.npz", images=ok_i, masks=ok_m[:, :3]), "differs from 'images' shape"),
        "2-D": (_npz(tmp_path / "d.npz", images=ok_i[0], masks=ok_m[0]), "must be N x H x W"),
        "float masks": (_npz(tmp_path / "e.npz", images=ok_i, masks=ok_m.astype(np.float32)), "integer or bool"),
        "nan": (_npz(tmp_path / "f.npz", images=nan, masks=ok_m), "NaN or infinite values (first in image 1)"),
    }


@pytest.mark.parametrize("case", ["missing", "not npz", "npy", "no images", "no masks", "shapes", "2-D", "float masks", "nan"])
def test_load_errors_are_one_line(tmp_path, case):
    path, words = _bad_cases(tmp_path)[case]
    with pytest.raises(SeisfmError) as err:
        load_image_set(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and words in msg, msg


def test_tgs_salt_set_loads(shared_data):
    path = shared_data / "real" / "tgs-salt" / "tgs_salt_train_3000.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    s = load_image_set(path)
    assert len(s) == 3000 and s.images.shape == s.masks.shape == (3000, 101, 101)
    assert set(np.unique(s.masks)) == {0, 1} and len(set(s.ids)) == 3000 and s.extra["depth_ft"].shape == (3000,)
    blank = (s.images.reshape(3000, -1).std(axis=1) == 0).sum()
    assert 0 < blank < 0.05 * 3000  # ~2 % blank patches
    v = embed_images(s.images[:2], stride=8)
    assert v.shape == (2, 13, 13, len(NAMES)) and np.isfinite(v).all()


# -- embed_images ----------------------------------------------------------------------------------


def test_embed_images_shapes_and_strides():
    images = np.random.default_rng(3).standard_normal((2, 21, 34)).astype(np.float32) * 40 + 100
    full = embed_images(images)
    assert full.shape == (2, 21, 34, len(NAMES)) and full.dtype == np.float32 and np.isfinite(full).all()
    for stride, grid in [(4, (6, 9)), ((2, 3), (11, 12))]:
        s = (stride, stride) if np.isscalar(stride) else stride
        v = embed_images(images, stride=stride)
        assert v.shape == (2, *grid, len(NAMES))
        _assert_close(v, full[:, :: s[0], :: s[1]])
    # each image: standardised on its own, mirrored at its borders, one section (trace, sample)
    rows, cols = (mirror(np.arange(-h, n + h), n) for n, h in zip(images.shape[1:], H[1:]))
    one = EMB.embed_block(standardise(images[1])[np.ix_(rows, cols)][None], (1, 1, 1))[0]
    _assert_close(full[1], one)
    assert embed_images(ImageSet(images, np.zeros(images.shape, np.int32), np.array(["a", "b"]), "x")).shape == full.shape


def test_embed_images_orientation_from_a_displayed_file(tmp_path):
    """A file stores rows = depth: flat layers vary down the rows. Loaded and embedded, the time
    axis is the embedder's: the instantaneous frequency is the layering's, and there is no dip."""
    depth = np.arange(64)[:, None]
    picture = np.broadcast_to(np.cos(2 * np.pi * 0.1 * depth), (64, 48))  # (depth, trace), flat layers
    path = _npz(tmp_path / "layers.npz", images=picture[None].astype(np.float32), masks=np.zeros((1, 64, 48), np.int8))
    v = embed_images(load_image_set(path).images, stride=4)[0]
    raw = v * _SCALE + _CENTRE
    assert abs(np.median(raw[..., NAMES.index("inst_freq_s4")]) - 0.1) < 0.01
    assert np.median(raw[..., NAMES.index("dip_s2")]) < 0.05


def test_embed_images_blank_image_and_progress_and_cancel():
    images = np.random.default_rng(4).standard_normal((3, 16, 20)).astype(np.float32)
    images[1] = 7.0  # blank: standardises to zeros, embeds to finite vectors
    calls = []
    v = embed_images(images, stride=4, progress=lambda d, t: calls.append((d, t)))
    assert np.isfinite(v).all() and calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    stop = threading.Event()
    stop.set()
    with pytest.raises(SeisfmCancelled):
        embed_images(images, cancel=stop)


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"images": np.zeros((4, 4))}, "N x H x W"),
        ({"images": np.zeros((0, 4, 4))}, "N x H x W"),
        ({"images": np.zeros((1, 4, 4)), "stride": 0}, "stride 0"),
        ({"images": np.zeros((1, 4, 4)), "stride": (1, 2, 3)}, "stride"),
        ({"images": np.zeros((1, 4, 4)), "model": "no-such-model"}, "no-such-model"),
    ],
)
def test_embed_images_errors(kw, words):
    with pytest.raises(SeisfmError, match=words):
        embed_images(kw.pop("images"), **kw)


# -- ViT models: 2d embeds one inline section per image; 2.5d / 3d are refused ---------------------


def _vit(kind, **extra):
    import torch

    from napari_seisfm.encoders.base import ModelCard
    from napari_seisfm.encoders.vit import ViTEncoder, config
    from napari_seisfm.encoders.vit_embedder import ViTEmbedder

    torch.manual_seed(0)
    enc = ViTEncoder(config("test", tokenization=kind)).eval()
    nd = 3 if kind == "3d" else 2
    card = ModelCard(id=f"micro-{kind}", name="micro", tokenization=kind, dim=64, patch=(8,) * nd, window=(32,) * nd, extra=extra)
    return ViTEmbedder(card, enc, device="cpu")


def test_embed_images_2d_vit_is_one_inline_section():
    images = np.random.default_rng(5).standard_normal((2, 24, 40)).astype(np.float32)
    inline = _vit("2d")
    v = embed_images(images, stride=4, embedder=inline)
    assert v.shape == (2, 6, 10, 64) and np.isfinite(v).all()
    h = inline.halo
    assert h[0] == 0
    rows, cols = (mirror(np.arange(-hh, n + hh), n) for n, hh in zip(images.shape[1:], h[1:]))
    ref = inline.embed_block(standardise(images[0])[np.ix_(rows, cols)][None], (1, 4, 4))[0]
    np.testing.assert_allclose(v[0], ref, atol=1e-5)
    fused = _vit("2d", fusion="inline+crossline")  # same weights (seed), card asks for late fusion
    np.testing.assert_allclose(embed_images(images, stride=4, embedder=fused), v, atol=1e-5)
    assert fused.fusion == "inline+crossline"  # the caller's embedder is left as it was


def test_embed_images_3d_vit_is_refused():
    with pytest.raises(SeisfmError, match="3d tokenization.*needs neighbouring lines"):
        embed_images(np.zeros((1, 40, 40), np.float32), embedder=_vit("3d"))


def test_embed_images_25d_vit_sees_an_image_as_extraction_sees_a_2d_line(tmp_path):
    """A 2.5D model embeds a lone image as the line mirrored into identical neighbours: the same
    vectors extraction gives for that image stored as a one-line cube."""
    from napari_seisfm.cube import Cube
    from napari_seisfm.extract import extract_features

    image = np.random.default_rng(8).standard_normal((40, 48)).astype(np.float32)
    emb = _vit("2.5d")
    v = embed_images(image[None], stride=4, embedder=emb)
    assert v.shape == (1, 10, 12, 64) and np.isfinite(v).all()
    fv = extract_features(
        Cube.from_array(image[None]), tmp_path / "line.zarr", embedder=emb, stride=4, pca=0, dtype="f32", chunks=(1, 10, 12)
    )  # one block: the windows are laid out as for the image
    vectors, _ = fv.load()
    line = np.asarray(vectors, np.float32).reshape(10, 12, -1)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731 - the store keeps unit vectors
    np.testing.assert_allclose(unit(v[0]), unit(line), atol=1e-4)
