"""Learned encoders: tokenizers, ViT/MAE, checkpoint loading, registry, ViTEmbedder, `seisfm models`.

All models here are the micro "test" configuration (window 32, patch 8, 64 wide), so the whole
file runs in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_seisfm.cli import main as cli_main
from napari_seisfm.encoders import registry
from napari_seisfm.encoders.base import ModelCard
from napari_seisfm.encoders.checkpoint import load_encoder, read_state_dict, sha256_file
from napari_seisfm.encoders.tokenizers import (
    Tokenizer25D,
    orientation_code,
    sincos_1d,
    sincos_2d,
    sincos_3d,
    view_steps,
)
from napari_seisfm.encoders.vit import MaskedAutoencoder, ViTEncoder, config, set_fused
from napari_seisfm.encoders.vit_embedder import ViTEmbedder, pick_device, pick_dtype, sample_views
from napari_seisfm.errors import SeisfmError

KINDS = ["2d", "2.5d", "3d"]
N_TOKENS = {"2d": 16, "2.5d": 64, "3d": 64}  # window 32, patch 8


def micro(kind: str, seed: int = 0, **kw) -> ViTEncoder:
    torch.manual_seed(seed)
    return ViTEncoder(config("test", tokenization=kind, **kw)).eval()


def sample_input(enc: ViTEncoder, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *enc.patch_embed.input_shape, generator=g)


def micro_card(kind: str, **kw) -> ModelCard:
    p = 8
    nd = 3 if kind == "3d" else 2
    base = {
        "id": f"micro-{kind}",
        "name": "micro",
        "tokenization": kind,
        "dim": 64,
        "patch": (p,) * nd,
        "window": (32,) * nd,
        "checkpoint": f"micro-{kind}.safetensors",
        "extra": {"architecture": {"size": "test"}},
    }
    base.update(kw)
    return ModelCard(**base)


# -- position codes --------------------------------------------------------------------------


def test_sincos_1d_values():
    code = sincos_1d(8, np.arange(3))
    assert code.shape == (3, 8)
    np.testing.assert_allclose(code[0], [0, 0, 0, 0, 1, 1, 1, 1])
    # first frequency is 1: position p -> sin(p), cos(p); frequencies fall as 1/10000^(2k/d)
    np.testing.assert_allclose(code[2, 0], np.sin(2.0))
    np.testing.assert_allclose(code[2, 4], np.cos(2.0))
    np.testing.assert_allclose(code[1, 1], np.sin(1 / 10000 ** (1 / 4)))


@pytest.mark.parametrize("code", [sincos_2d(64, 4, 4), sincos_3d(64, 4, 4, 4), sincos_3d(768, 14, 14, 14)])
def test_position_codes_distinct_and_bounded(code):
    assert np.abs(code).max() <= 1.0
    sq = (code**2).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * code @ code.T  # squared distances
    np.fill_diagonal(d, np.inf)
    assert d.min() > 1e-3  # every position has its own code


def test_sincos_2d_layout_matches_mae():
    # MAE: first half encodes the column (w), second half the row (h)
    code = sincos_2d(16, 3, 5)
    r, c = 2, 4
    np.testing.assert_allclose(code[r * 5 + c, :8], sincos_1d(8, np.array([c]))[0])
    np.testing.assert_allclose(code[r * 5 + c, 8:], sincos_1d(8, np.array([r]))[0])


def test_orientation_code_is_cyclic_and_separates_views():
    np.testing.assert_allclose(orientation_code(30.0), orientation_code(210.0), atol=1e-12)
    np.testing.assert_allclose(orientation_code(0.0), orientation_code(180.0), atol=1e-12)
    views = orientation_code(np.array([0.0, 90.0, 45.0, 135.0]))
    assert len({tuple(np.round(v, 6)) for v in views}) == 4
    np.testing.assert_allclose(np.linalg.norm(views, axis=1), 1.0)


def test_25d_position_code_is_view_plus_orientation():
    tok = Tokenizer25D(64, window=32, patch=8)
    code = tok.position_code().detach()
    assert code.shape == (64, 64)
    per_view = code.reshape(4, 16, 64)
    diff = per_view - tok.pos_embed  # what is left is one orientation vector per view
    assert torch.allclose(diff, diff[:, :1].expand_as(diff), atol=1e-6)
    assert all(not torch.allclose(diff[i, 0], diff[j, 0]) for i in range(4) for j in range(i))


# -- ViT / MAE -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_encoder_shapes(kind):
    enc = micro(kind)
    x = sample_input(enc)
    assert enc.n_tokens == N_TOKENS[kind]
    assert enc(x).shape == (2, 1 + N_TOKENS[kind], 64)
    assert enc.patch_tokens(x).shape == (2, N_TOKENS[kind], 64)


@pytest.mark.parametrize("kind", KINDS)
def test_sdpa_equals_eager_reference(kind):
    enc = micro(kind)
    x = sample_input(enc)
    with torch.no_grad():
        fused = enc(x)
        set_fused(enc, False)
        eager = enc(x)
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_mae_masking_and_loss(kind):
    torch.manual_seed(0)
    mae = MaskedAutoencoder(config("test", tokenization=kind))
    x = sample_input(mae.encoder)
    n = N_TOKENS[kind]
    loss, pred, mask = mae(x)
    patch_numel = 8**3 if kind == "3d" else 8**2
    assert pred.shape == (2, n, patch_numel)
    assert mae.encoder.patch_embed.patchify(x).shape == (2, n, patch_numel)
    # 85% masked: round(n * 0.15) visible tokens per sample
    assert mask.shape == (2, n) and (mask.sum(1) == n - round(n * 0.15)).all()
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in mae.parameters() if p.grad is not None)


def test_patchify_inverts_image_layout():
    enc = micro("2d")
    x = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 32, 32)
    p = enc.patch_embed.patchify(x)
    # token 1 is the second patch along the row (columns 8..15 of rows 0..7)
    torch.testing.assert_close(p[0, 1].reshape(8, 8), x[0, :8, 8:16])


# -- 2.5D view sampling ----------------------------------------------------------------------


def test_view_steps_equal_and_unequal_spacing():
    np.testing.assert_array_equal(view_steps(), [[0, 1], [1, 0], [1, 1], [1, -1]])
    np.testing.assert_allclose(view_steps((12.5, 25.0)), [[0, 1], [1, 0], [1, 0.5], [1, -0.5]])
    with pytest.raises(ValueError):
        view_steps((0.0, 1.0))


def test_sample_views_exact_on_grid_and_linear_between():
    vol = torch.randn(40, 40, 40)
    centre = torch.tensor([[20, 21, 3]])
    steps = torch.as_tensor(view_steps(), dtype=torch.float32)
    v = sample_views(vol, centre, steps, 16)  # (1, 4, time, trace)
    u = np.arange(16) - 8
    torch.testing.assert_close(v[0, 0], vol[20, 21 + u, 3:19].T)
    torch.testing.assert_close(v[0, 1], vol[20 + u, 21, 3:19].T)
    torch.testing.assert_close(v[0, 2], vol[20 + u, 21 + u, 3:19].T)
    torch.testing.assert_close(v[0, 3], vol[20 + u, 21 - u, 3:19].T)
    # unequal spacing: fractional steps, bilinear interpolation is exact on a linear field
    i, x, t = torch.meshgrid(*(torch.arange(40.0),) * 3, indexing="ij")
    lin = 2 * i + 3 * x + t
    steps = torch.as_tensor(view_steps((12.5, 25.0)), dtype=torch.float32)
    v = sample_views(lin, centre, steps, 16)
    pos = centre[0, :2].float() + torch.as_tensor(u, dtype=torch.float32)[:, None] * steps[2]
    expected = 2 * pos[:, 0, None] + 3 * pos[:, 1, None] + torch.arange(3.0, 19.0)[None]
    torch.testing.assert_close(v[0, 2], expected.T)


# -- checkpoint loading ----------------------------------------------------------------------


def _outputs(enc, x):
    with torch.no_grad():
        return enc(x)


@pytest.mark.parametrize("layout", ["mae-dict", "plain", "safetensors", "module-prefix", "full-mae", "hf"])
def test_loader_round_trips(tmp_path, layout):
    kind = "2.5d"
    src = micro(kind, seed=3)
    x = sample_input(src)
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    path = tmp_path / ("w.safetensors" if layout == "safetensors" else "w.pth")
    if layout == "mae-dict":
        torch.save({"model": sd, "epoch": 3}, path)
    elif layout == "plain":
        torch.save(sd, path)
    elif layout == "safetensors":
        save_file(sd, str(path))
    elif layout == "module-prefix":
        torch.save({"model": {"module." + k: v for k, v in sd.items()}}, path)
    elif layout == "full-mae":  # encoder + decoder, as MAE pretraining saves it
        torch.manual_seed(3)
        mae = MaskedAutoencoder(config("test", tokenization=kind))
        mae.encoder.load_state_dict(sd)
        torch.save({"model": mae.state_dict()}, path)
    else:  # Hugging Face ViTMAE names, q/k/v split
        hf = {}
        for k, v in sd.items():
            k2 = k.replace("patch_embed.proj.", "vit.embeddings.patch_embeddings.projection.")
            k2 = (
                k2.replace("cls_token", "vit.embeddings.cls_token").replace("norm.", "vit.layernorm.", 1)
                if k2.startswith(("cls", "norm."))
                else k2
            )
            if k2.startswith("blocks."):
                n, rest = k2.split(".", 2)[1:]
                pre = f"vit.encoder.layer.{n}."
                if rest.startswith("attn.qkv."):
                    kind_ = rest.rsplit(".", 1)[1]
                    for name, part in zip(("query", "key", "value"), v.chunk(3)):
                        hf[f"{pre}attention.attention.{name}.{kind_}"] = part
                    continue
                rest = (
                    rest.replace("attn.proj.", "attention.output.dense.")
                    .replace("norm1.", "layernorm_before.")
                    .replace("norm2.", "layernorm_after.")
                    .replace("mlp.fc1.", "intermediate.dense.")
                    .replace("mlp.fc2.", "output.dense.")
                )
                k2 = pre + rest
            hf[k2] = v
        torch.save(hf, path)
    dst = micro(kind, seed=99)
    assert not torch.allclose(_outputs(dst, x), _outputs(src, x))
    report = load_encoder(dst, path)
    torch.testing.assert_close(_outputs(dst, x), _outputs(src, x), rtol=0, atol=0)
    assert report.sha256 == sha256_file(path) and len(report.sha256) == 64
    if layout == "full-mae":
        assert any(k.startswith("decoder") for k in report.ignored)


def test_rgb_patch_projection_is_averaged(tmp_path):
    src = micro("2d", seed=5)
    sd = dict(src.state_dict())
    rgb = torch.randn(64, 3, 8, 8)
    sd["patch_embed.proj.weight"] = rgb
    sd["pos_embed"] = torch.randn(1, 99, 64)  # a learned code of another size: dropped
    torch.save({"model": sd}, tmp_path / "rgb.pth")
    dst = micro("2d", seed=6)
    report = load_encoder(dst, tmp_path / "rgb.pth")
    torch.testing.assert_close(dst.patch_embed.proj.weight, rgb.mean(dim=1, keepdim=True))
    torch.testing.assert_close(dst.patch_embed.pos_embed, torch.from_numpy(sincos_2d(64, 4, 4)).float())
    assert any("averaged" in n for n in report.notes) and any("dropped" in n for n in report.notes)


def test_fitting_position_code_is_taken(tmp_path):
    src = micro("2d", seed=5)
    sd = dict(src.state_dict())
    code = torch.randn(1, 17, 64)  # cls row + 16 tokens, as MAE stores it
    sd["pos_embed"] = code
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "pe.safetensors"))
    dst = micro("2d")
    load_encoder(dst, tmp_path / "pe.safetensors")
    torch.testing.assert_close(dst.patch_embed.pos_embed, code[0, 1:])


def test_mismatched_checkpoint_lists_keys(tmp_path):
    other = micro("2d", depth=3, dim=96, heads=4)
    path = tmp_path / "other.pth"
    sd = dict(other.state_dict())
    sd["extra_thing.weight"] = torch.zeros(2)
    torch.save({"model": sd}, path)
    with pytest.raises(SeisfmError) as err:
        load_encoder(micro("2d"), path, what="the micro encoder")
    msg = str(err.value)
    assert str(path) in msg and "the micro encoder" in msg
    assert "9 unexpected (blocks.2." in msg or "unexpected (" in msg
    assert "shape-mismatched (" in msg and "file (96,) vs model (64,)" in msg
    assert "\n" not in msg
    # counts: the third block's tensors plus the extra key are unexpected
    n_block = len([k for k in other.state_dict() if k.startswith("blocks.2.")])
    assert f"{n_block + 1} unexpected" in msg


def test_missing_keys_reported(tmp_path):
    sd = dict(micro("2d").state_dict())
    del sd["norm.weight"], sd["blocks.0.attn.qkv.bias"]
    torch.save(sd, tmp_path / "partial.pt")
    with pytest.raises(SeisfmError, match=r"2 missing \(blocks.0.attn.qkv.bias, norm.weight\)"):
        load_encoder(micro("2d"), tmp_path / "partial.pt")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        torch.save({"model": {"w": torch.zeros(1)}, "payload": _Evil(str(marker))}, f)
    with pytest.raises(SeisfmError, match=r"evil.pth: refused: .*Unsupported global: GLOBAL io.open.*weights_only=True"):
        read_state_dict(path)
    assert not marker.exists()


def test_bad_files(tmp_path):
    with pytest.raises(SeisfmError, match="no such checkpoint file"):
        read_state_dict(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(SeisfmError, match="junk.pth: not a PyTorch checkpoint"):
        read_state_dict(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(SeisfmError, match="junk.safetensors: not a readable safetensors file"):
        read_state_dict(tmp_path / "junk.safetensors")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(SeisfmError, match="holds no state dict"):
        read_state_dict(tmp_path / "list.pth")


# -- registry --------------------------------------------------------------------------------


def write_micro_model(d: Path, kind: str = "2.5d", sha256: str = "", seed: int = 0) -> Path:
    enc = micro(kind, seed=seed)
    weights = d / f"micro-{kind}.safetensors"
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(weights))
    nd = 3 if kind == "3d" else 2
    (d / f"micro-{kind}.toml").write_text(
        f'id = "micro-{kind}"\nname = "micro"\ntokenization = "{kind}"\ndim = 64\n'
        f'patch = {[8] * nd}\nwindow = {[32] * nd}\ncheckpoint = "micro-{kind}.safetensors"\n'
        f'sha256 = "{sha256}"\n\n[architecture]\nsize = "test"\n'
    )
    return weights


def test_bundled_cards(user_models):
    ids = {c.id for c in registry.list_cards()}
    assert {"ncs-2d", "ncs-2.5d", "ncs-3d", "mae-imagenet-vitb", "attributes"} <= ids
    c = registry.card("ncs-3d")
    assert (c.tokenization, c.dim, c.patch, c.window) == ("3d", 768, (16, 16, 16), (224, 224, 224))
    assert c.sha256 is None and c.checkpoint == "ncs-3d.pth"
    assert "Norwegian Continental Shelf" in c.citation
    assert registry.card("mae-imagenet-vitb").licence == "CC-BY-NC 4.0"
    assert registry.card(registry.DEFAULT_MODEL).checkpoint is None
    assert registry.is_installed(registry.card("attributes"))
    assert not registry.is_installed(c)
    assert registry.checkpoint_path(c) == user_models / "ncs-3d.pth"


def test_unknown_model_lists_known_ids(user_models):
    with pytest.raises(SeisfmError, match=r"model 'nope': unknown; known models: .*ncs-2\.5d"):
        registry.card("nope")


def test_not_installed_message(user_models):
    with pytest.raises(SeisfmError) as err:
        registry.get_embedder("ncs-2.5d")
    assert f"not installed: put the checkpoint at {user_models / 'ncs-2.5d.pth'} or pass --checkpoint" in str(err.value)
    with pytest.raises(SeisfmError, match="no such checkpoint file"):
        registry.get_embedder("ncs-2.5d", checkpoint=user_models / "absent.pth")


def test_bad_card(user_models):
    (user_models / "bad.toml").write_text('id = "bad"\nname = "x"\n')
    with pytest.raises(SeisfmError, match="bad.toml: model card lacks the required key 'tokenization'"):
        registry.list_cards()
    (user_models / "bad.toml").write_text("id = [")
    with pytest.raises(SeisfmError, match="bad.toml: not a readable model card"):
        registry.list_cards()


def test_get_embedder_from_user_card(user_models):
    weights = write_micro_model(user_models, "2.5d")
    emb = registry.get_embedder("micro-2.5d", device="cpu")
    assert isinstance(emb, ViTEmbedder) and emb.dim == 64
    assert emb.checkpoint_sha256() == sha256_file(weights)
    assert emb.halo == (16, 16, 16)
    block = np.random.default_rng(0).standard_normal((32 + 16, 32 + 32, 32 + 8)).astype(np.float32)
    out = emb.embed_block(block, (4, 4, 4))
    assert out.shape == (4, 8, 2, 64) and out.dtype == np.float32 and np.isfinite(out).all()


def test_card_hash_is_checked(user_models):
    write_micro_model(user_models, "2d", sha256="0" * 64)
    with pytest.raises(SeisfmError, match="differs from the model card's"):
        registry.get_embedder("micro-2d", device="cpu")
    # an explicit --checkpoint is the user's choice: loaded, hash recorded
    emb = registry.get_embedder("micro-2d", checkpoint=user_models / "micro-2d.safetensors", device="cpu")
    assert emb.checkpoint_sha256() == sha256_file(user_models / "micro-2d.safetensors")


def test_wrong_checkpoint_for_card(user_models):
    write_micro_model(user_models, "2d")
    other = micro("3d")
    torch.save({"model": other.state_dict()}, user_models / "three.pth")
    with pytest.raises(SeisfmError, match=r"three.pth: checkpoint does not match the micro-2d encoder: .*shape-mismatched"):
        registry.get_embedder("micro-2d", checkpoint=user_models / "three.pth", device="cpu")


def test_attributes_dispatch(user_models):
    pytest.importorskip("napari_seisfm.encoders.attributes")
    emb = registry.get_embedder("attributes")
    assert type(emb).__name__ == "AttributeEmbedder" and emb.dim == registry.card("attributes").dim


def test_device_and_precision_choices():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    assert pick_dtype("auto", torch.device("cpu")) is None
    assert pick_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(SeisfmError, match="precision 'fp8'"):
        pick_dtype("fp8", torch.device("cpu"))
    with pytest.raises(SeisfmError, match="not a torch device"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(SeisfmError, match="CUDA is not available"):
            pick_device("cuda")


# -- ViTEmbedder grid ------------------------------------------------------------------------


def _local_encoder(kind):
    """Depth 0, no position code: a token depends on its own patch only, so the embedding of a
    grid point can be recomputed from the patch centred on it."""
    enc = micro(kind, depth=0)
    with torch.no_grad():
        enc.patch_embed.pos_embed.zero_()
        if kind == "2.5d":
            enc.patch_embed.orient_embed.weight.zero_()
    return enc


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stride", [(4, 4, 4), (3, 5, 2)])
def test_embed_block_grid_is_patch_centred(kind, stride):
    enc = _local_encoder(kind)
    emb = ViTEmbedder(micro_card(kind), enc, device="cpu", batch_size=3)
    h = emb.halo
    core = (13, 27, 33)
    block = np.random.default_rng(1).standard_normal([c + 2 * hh for c, hh in zip(core, h)]).astype(np.float32)
    out = emb.embed_block(block, stride)
    expect = tuple(-(-c // s) for c, s in zip(core, stride))
    assert out.shape == expect + (64,) and np.isfinite(out).all()
    w = enc.patch_embed.proj.weight[:, 0]
    for g in [(0, 0, 0), (1, 2, 3), tuple(n - 1 for n in expect)]:
        p = [h[k] + g[k] * stride[k] for k in range(3)]
        if kind == "3d":
            patch = block[p[0] - 4 : p[0] + 4, p[1] - 4 : p[1] + 4, p[2] - 4 : p[2] + 4]
        else:  # section image: rows time, columns traces
            patch = block[p[0], p[1] - 4 : p[1] + 4, p[2] - 4 : p[2] + 4].T
        with torch.no_grad():
            tok = (w * torch.from_numpy(np.ascontiguousarray(patch))).flatten(1).sum(1) + enc.patch_embed.proj.bias
            ref = enc.norm(tok).numpy()
        np.testing.assert_allclose(out[g], ref, atol=1e-5)


def test_embed_block_2d_fusion_averages_sections():
    enc = _local_encoder("2d")
    inline = ViTEmbedder(micro_card("2d"), enc, device="cpu")
    fused = ViTEmbedder(micro_card("2d", extra={"fusion": "inline+crossline"}), enc, device="cpu")
    assert fused.halo == (16, 16, 16) and inline.halo == (0, 16, 16)
    block = np.random.default_rng(2).standard_normal((48, 48, 48)).astype(np.float32)
    a = inline.embed_block(block[16:32], (4, 4, 4))
    b = fused.embed_block(block, (4, 4, 4))
    # crossline-section tokens: transpose the block, embed as inline sections, transpose back
    c = inline.embed_block(np.ascontiguousarray(block.transpose(1, 0, 2)[16:32]), (4, 4, 4)).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(b, (a + c) / 2, atol=1e-5)


def test_embed_block_context_matters_for_deep_model():
    """With attention, tokens see their window: the same patch in another context embeds differently."""
    emb = ViTEmbedder(micro_card("2.5d"), micro("2.5d"), device="cpu")
    rng = np.random.default_rng(3)
    block = rng.standard_normal((48, 48, 48)).astype(np.float32)
    out1 = emb.embed_block(block, (4, 4, 4))
    block[:, :, :8] = rng.standard_normal((48, 48, 8))  # change far context only
    out2 = emb.embed_block(block, (4, 4, 4))
    assert not np.allclose(out1, out2)


def test_out_of_memory_back_off(monkeypatch):
    emb = ViTEmbedder(micro_card("2d"), micro("2d"), device="cpu", batch_size=8)
    block = np.random.default_rng(4).standard_normal((8, 48, 48)).astype(np.float32)
    expected = emb.embed_block(block, (4, 4, 4))
    real = emb.encoder.patch_tokens
    sizes = []

    def limited(x):
        sizes.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(x)

    monkeypatch.setattr(emb.encoder, "patch_tokens", limited)
    emb.batch_size = 8
    out = emb.embed_block(block, (4, 4, 4))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert sizes[:3] == [8, 4, 2] and emb.batch_size == 2

    def always(x):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(emb.encoder, "patch_tokens", always)
    with pytest.raises(SeisfmError, match="out of device memory even at batch size 1"):
        emb.embed_block(block, (4, 4, 4))


def test_embed_block_rejects_small_block():
    emb = ViTEmbedder(micro_card("3d"), micro("3d"), device="cpu")
    with pytest.raises(SeisfmError, match="too small for halo"):
        emb.embed_block(np.zeros((20, 40, 40), np.float32), (4, 4, 4))


def test_card_dim_must_match_architecture():
    with pytest.raises(SeisfmError, match="dim 768 but the architecture is 64 wide"):
        ViTEmbedder(micro_card("2d", dim=768), micro("2d"), device="cpu")


# -- seisfm models ---------------------------------------------------------------------------


def test_seisfm_models_command(user_models, capsys):
    write_micro_model(user_models, "2.5d")
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "not installed: put the checkpoint at" in lines["ncs-2.5d"] and "or pass --checkpoint" in lines["ncs-2.5d"]
    assert str(user_models / "ncs-2.5d.pth") in lines["ncs-2.5d"]
    assert "768" in lines["ncs-3d"] and "3d" in lines["ncs-3d"]
    assert "installed: " in lines["micro-2.5d"] and "not installed" not in lines["micro-2.5d"]
    assert "(default)" in lines["attributes"]
    assert cli_main(["models", "-v"]) == 0
    assert "CC-BY-NC 4.0" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["2.5d", "3d"])
def test_coarse_tiling_interpolates_patch_tokens(kind):
    enc = _local_encoder(kind)
    exact = ViTEmbedder(micro_card(kind), enc, device="cpu")
    coarse = ViTEmbedder(micro_card(kind, extra={"tiling": "coarse"}), enc, device="cpu")
    block = np.random.default_rng(5).standard_normal((64, 64, 64)).astype(np.float32)  # core 32
    fine = coarse.embed_block(block, (4, 4, 4))
    ref = exact.embed_block(block, (4, 8, 8) if kind != "3d" else (8, 8, 8))  # tokens every patch
    assert fine.shape == exact.embed_block(block, (4, 4, 4)).shape
    if kind == "3d":
        np.testing.assert_allclose(fine[::2, ::2, ::2], ref, atol=1e-5)
        np.testing.assert_allclose(fine[1, 2, 4], (ref[0, 1, 2] + ref[1, 1, 2]) / 2, atol=1e-5)
    else:
        np.testing.assert_allclose(fine[:, ::2, ::2], ref, atol=1e-5)
        np.testing.assert_allclose(fine[3, 2, 5], (ref[3, 1, 2] + ref[3, 1, 3]) / 2, atol=1e-5)
    with pytest.raises(SeisfmError, match="tiling 'fast'"):
        ViTEmbedder(micro_card(kind, extra={"tiling": "fast"}), enc, device="cpu")


def test_pretrained_model_loads_into_the_encoder(tmp_path):
    from napari_seisfm.pretrain.run import pretrain

    cube = np.random.default_rng(0).standard_normal((40, 40, 40)).astype(np.float32)
    np.save(tmp_path / "cube.npy", cube)
    result = pretrain(
        out=tmp_path / "run",
        cubes=[tmp_path / "cube.npy"],
        tokenization="2.5d",
        size="test",
        steps=3,
        batch_size=2,
        device="cpu",
        install=False,
    )
    assert result.steps == 3 and result.card.is_file()
    enc = micro("2.5d", seed=7)
    load_encoder(enc, tmp_path / "run" / "run.safetensors")  # the MAE file holds this encoder exactly


def test_bundled_micro_model_loads_and_embeds(user_models):
    c = registry.card("seisfm-micro-2.5d")
    assert registry.is_installed(c) and c.sha256  # bundled, hash checked on load
    emb = registry.get_embedder("seisfm-micro-2.5d", device="cpu")
    assert emb.checkpoint_sha256() == c.sha256
    block = np.random.default_rng(6).standard_normal((48, 48, 48)).astype(np.float32)
    out = emb.embed_block(block, (4, 4, 4))
    assert out.shape == (4, 4, 4, c.dim) and c.dim == 96 and np.isfinite(out).all()


# -- embedder families ------------------------------------------------------------------------------


def test_families_are_found_by_folder():
    fams = registry.families()
    assert {"attributes", "2d", "2.5d", "3d"} <= set(fams)
    assert fams["attributes"].name.endswith("families.attributes") and not fams["attributes"].weights
    assert fams["2.5d"].name.endswith("families.vit") and fams["2.5d"].weights
    assert "mean-amplitude" not in fams or fams["mean-amplitude"].name.endswith("_template")  # the template is skipped


def test_a_registered_tokenization_twice_is_refused():
    from napari_seisfm.encoders.base import family

    with pytest.raises(ValueError, match="registered twice"):
        family("attributes")(lambda card, weights, **options: None)


def test_the_family_template_builds_a_working_embedder(user_models, monkeypatch):
    """Copying encoders/families/_template.py is all a new family needs: a card with its tokenization
    then gives an embedder through the one get_embedder, for blocks and for lone sections."""
    import importlib
    import sys

    from napari_seisfm.encoders import base

    monkeypatch.setattr(base, "FAMILIES", dict(base.FAMILIES))  # the registration below stays in this test
    monkeypatch.setattr(registry, "FAMILIES", base.FAMILIES)
    name = "napari_seisfm.encoders.families._template"
    monkeypatch.delitem(sys.modules, name, raising=False)
    template = importlib.import_module(name)
    (user_models / "mean.toml").write_text('id = "mean"\nname = "Mean"\ntokenization = "mean-amplitude"\ndim = 1\n')
    emb = registry.get_embedder("mean")
    assert isinstance(emb, template.MeanAmplitudeEmbedder)
    block = np.random.default_rng(0).standard_normal((5, 6, 7)).astype(np.float32)
    out = emb.embed_block(block, (2, 2, 3))
    assert out.shape == (2, 2, 2, 1)
    assert np.isclose(out[1, 1, 1, 0], block[2:5, 2:5, 3:6].mean())
    with pytest.raises(SeisfmError, match="has no weights"):
        registry.get_embedder("mean", checkpoint="x.pth")
    with pytest.raises(SeisfmError, match="needs neighbouring lines"):  # the default check: halo along inlines, not 2.5d
        emb.check_sections()


def test_embed_sections_default_is_the_mirrored_section_for_2_5d(user_models):
    """The interface's default: a lone section embedded as a 2-D line, mirrored into identical neighbours."""
    from napari_seisfm.encoders.vit import build_encoder

    torch.manual_seed(0)
    c = registry.card("seisfm-micro-2.5d")
    emb = ViTEmbedder(c, build_encoder(c), device="cpu")
    h = emb.halo
    secs = np.random.default_rng(1).standard_normal((2, 4 + 2 * h[1], 4 + 2 * h[2])).astype(np.float32)
    got = emb.embed_sections(secs, (2, 2))
    assert got.shape == (2, 2, 2, emb.dim)
    for i in range(2):
        block = np.repeat(secs[i][None], 2 * h[0] + 1, axis=0)
        np.testing.assert_allclose(got[i], emb.embed_block(block, (1, 2, 2))[0], rtol=1e-5, atol=1e-5)
