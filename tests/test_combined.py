"""Combined models (``attributes+seisfm-micro-2.5d``): concatenated unit vectors on the same grid."""

import numpy as np
import pytest

from napari_seisfm.cube import Cube
from napari_seisfm.encoders import registry
from napari_seisfm.encoders.combined import CombinedEmbedder, unit
from napari_seisfm.errors import SeisfmError
from napari_seisfm.extract import extract_features

PAIR = "attributes+seisfm-micro-2.5d"


def test_block_is_each_part_on_its_own_crop_as_unit_vectors(user_models):
    emb = registry.get_embedder(PAIR, device="cpu")
    attrs, vit = emb.parts
    assert isinstance(emb, CombinedEmbedder) and emb.dim == attrs.dim + vit.dim
    assert emb.halo == tuple(max(a, b) for a, b in zip(attrs.halo, vit.halo))
    core, stride = (8, 8, 16), (4, 4, 4)
    block = np.random.default_rng(3).standard_normal([c + 2 * h for c, h in zip(core, emb.halo)]).astype(np.float32)
    out = emb.embed_block(block, stride)
    assert out.shape == (2, 2, 4, emb.dim)
    for k, part in enumerate(emb.parts):
        d = [b - h for b, h in zip(emb.halo, part.halo)]
        crop = block[d[0] : block.shape[0] - d[0], d[1] : block.shape[1] - d[1], d[2] : block.shape[2] - d[2]]
        ref = unit(part.embed_block(np.ascontiguousarray(crop), stride))
        lo = sum(p.dim for p in emb.parts[:k])
        np.testing.assert_allclose(out[..., lo : lo + part.dim], ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.sqrt(2), rtol=1e-5)  # each part weighs the same


def test_extraction_with_a_combined_model(user_models, tmp_path):
    cube = Cube.from_array(np.random.default_rng(4).standard_normal((24, 24, 48)).astype(np.float32))
    fv = extract_features(cube, tmp_path / "f.zarr", model=PAIR, stride=4, pca=0, dtype="f32")
    assert fv.complete and fv.model == PAIR and fv.dim == 32 + 96
    vectors, valid = fv.load()
    assert valid.all() and np.isfinite(vectors).all()


@pytest.mark.parametrize(
    "model, words",
    [
        ("attributes+no-such-model", "no-such-model.*unknown"),
        ("attributes+", "an empty part"),
    ],
)
def test_bad_combinations_are_one_clear_error(user_models, model, words):
    with pytest.raises(SeisfmError, match=words):
        registry.get_embedder(model)


def test_combined_model_takes_no_checkpoint(user_models, tmp_path):
    with pytest.raises(SeisfmError, match="combined model takes no --checkpoint"):
        registry.get_embedder(PAIR, checkpoint=tmp_path / "x.pth")


def test_one_part_is_not_a_combination():
    with pytest.raises(SeisfmError, match="two or more parts"):
        CombinedEmbedder([registry.get_embedder("attributes")])
