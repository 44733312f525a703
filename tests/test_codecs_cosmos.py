"""Cosmos tokenizer path, exercised with tiny TorchScript codecs built here (no NVIDIA weights exist offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_seisfm.codecs import COSMOS_CODECS, compare, get_codec
from napari_seisfm.codecs.families.cosmos import FSQ_CODEBOOK
from napari_seisfm.errors import SeisfmError


class Enc(torch.nn.Module):
    """Continuous: block means of the channel mean, spread over 16 latent channels (like CI's 16)."""

    def __init__(self, f: int):
        super().__init__()
        self.f = f
        self.gain = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (F.avg_pool2d(x.mean(dim=1, keepdim=True), self.f) * self.gain).repeat(1, 16, 1, 1)


class Dec(torch.nn.Module):
    def __init__(self, f: int):
        super().__init__()
        self.f = f

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.interpolate(z[:, :1], scale_factor=float(self.f), mode="nearest").repeat(1, 3, 1, 1)


class DEnc(torch.nn.Module):
    """Discrete: block means quantized to a codebook index; returns (indices, codes) like Cosmos DI."""

    def __init__(self, f: int, k: int):
        super().__init__()
        self.f, self.k = f, k
        self.gain = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = F.avg_pool2d(x.mean(dim=1, keepdim=True), self.f)[:, 0] * self.gain
        idx = torch.round((z.clamp(-1.0, 1.0) + 1.0) / 2.0 * float(self.k - 1)).long()
        return idx, z


class DDec(torch.nn.Module):
    def __init__(self, f: int, k: int):
        super().__init__()
        self.f, self.k = f, k

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        z = idx.float()[:, None] / float(self.k - 1) * 2.0 - 1.0
        return F.interpolate(z, scale_factor=float(self.f), mode="nearest").repeat(1, 3, 1, 1)


@pytest.fixture(scope="module")
def cosmos_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cosmos")
    for variant in ("CI8x8", "CI16x16", "DI8x8", "DI16x16"):
        f = 8 if variant.endswith("8x8") else 16
        d = root / f"Cosmos-Tokenizer-{variant}"
        d.mkdir()
        enc, dec = (DEnc(f, FSQ_CODEBOOK), DDec(f, FSQ_CODEBOOK)) if variant.startswith("DI") else (Enc(f), Dec(f))
        torch.jit.script(enc).save(str(d / "encoder.jit"))
        torch.jit.script(dec).save(str(d / "decoder.jit"))
    return root


def smooth_section(ntr=96, ns=160):
    t = np.linspace(0, 1, ns)
    tr = np.linspace(0, 1, ntr)[:, None]
    return (np.sin(2 * np.pi * (2 * t + 0.5 * tr)) + 0.3 * np.cos(2 * np.pi * 3 * t)).astype(np.float32)


def test_all_four_tokenizers_with_honest_sizes(cosmos_dir):
    comp = compare(smooth_section(), list(COSMOS_CODECS), 4.0, cosmos_dir=str(cosmos_dir))
    x = comp.input
    h, w = x.shape  # 96 x 160, already multiples of 32
    rows = {r.method: r for r in comp.rows}
    assert all(r.ok and r.kind == "neural" and r.backend.startswith("torch-") for r in comp.rows)
    # continuous: 16 channels x (h/f) x (w/f) float32 latents (4 bytes) + 4 bytes of scale
    assert rows["cosmos-CI8x8"].nbytes == 16 * (h // 8) * (w // 8) * 4 + 4
    assert rows["cosmos-CI16x16"].nbytes == 16 * (h // 16) * (w // 16) * 4 + 4
    # discrete: one index per (f x f) block, ceil(log2 64000) = 16 bits each
    assert rows["cosmos-DI8x8"].nbytes == (h // 8) * (w // 8) * 2 + 4
    assert rows["cosmos-DI16x16"].nbytes == (h // 16) * (w // 16) * 2 + 4
    assert rows["cosmos-DI16x16"].ratio == pytest.approx(x.size * 4 / rows["cosmos-DI16x16"].nbytes)
    # a block-mean codec keeps a smooth section roughly, 8x8 better than 16x16
    assert rows["cosmos-CI8x8"].snr > rows["cosmos-CI16x16"].snr > 5
    assert rows["cosmos-CI8x8"].corr > 0.9
    assert comp.reconstructions["cosmos-DI8x8"].shape == x.shape


def test_bf16_latents_count_two_bytes(cosmos_dir, tmp_path):
    d = tmp_path / "CI8x8"
    d.mkdir()
    torch.jit.script(Enc(8).to(torch.bfloat16)).save(str(d / "encoder.jit"))
    torch.jit.script(Dec(8)).save(str(d / "decoder.jit"))
    codec = get_codec("cosmos-CI8x8", cosmos_dir=str(tmp_path))
    x = smooth_section(64, 64)
    enc = codec.encode(x)
    assert enc.payload.dtype == torch.bfloat16 and enc.nbytes == 16 * 8 * 8 * 2 + 4
    y = codec.decode(enc)
    assert y.dtype == np.float32 and y.shape == x.shape


def test_sizes_not_multiple_of_32_are_padded_and_cropped(cosmos_dir):
    codec = get_codec("cosmos-CI8x8", cosmos_dir=str(cosmos_dir))
    x = smooth_section(40, 70)
    enc = codec.encode(x)
    assert enc.meta["padded"] == (64, 96)
    assert codec.decode(enc).shape == (40, 70)


def test_too_small_for_the_tokenizer(cosmos_dir):
    x = smooth_section(20, 200)
    with pytest.raises(SeisfmError, match=r"cosmos-CI8x8: section 20x200 is smaller than its 32x32 block"):
        compare(x, ["quant8", "cosmos-CI8x8"], 4.0, trim_multiple=1, cosmos_dir=str(cosmos_dir))


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(SeisfmError, match=r"cosmos-DI8x8 not installed: put encoder.jit and decoder.jit in .*--cosmos-dir"):
        get_codec("cosmos-DI8x8")
    with pytest.raises(SeisfmError, match="no sub-directory ending in CI16x16"):
        get_codec("cosmos-CI16x16", cosmos_dir=str(tmp_path))
    (tmp_path / "Cosmos-Tokenizer-CI16x16").mkdir()
    (tmp_path / "Cosmos-Tokenizer-CI16x16" / "encoder.jit").write_bytes(b"x")  # decoder missing
    with pytest.raises(SeisfmError, match="not installed"):
        get_codec("cosmos-CI16x16", cosmos_dir=str(tmp_path))
    with pytest.raises(SeisfmError, match="not a directory"):
        get_codec("cosmos-CI8x8", cosmos_dir=str(tmp_path / "nope"))
    with pytest.raises(SeisfmError, match="unknown tokenizer"):
        get_codec("cosmos-CI4x4", cosmos_dir=str(tmp_path))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    d = tmp_path / "Cosmos-Tokenizer-CI8x8"
    d.mkdir()
    (d / "encoder.jit").write_bytes(b"not a zip")
    (d / "decoder.jit").write_bytes(b"not a zip")
    with pytest.raises(SeisfmError, match="cannot load TorchScript tokenizer"):
        get_codec("cosmos-CI8x8", cosmos_dir=str(tmp_path))


def test_cli_with_cosmos_dir(cosmos_dir, tmp_path, capsys):
    from napari_seisfm.cli import main

    np.save(tmp_path / "c.npy", np.stack([smooth_section(64, 128)] * 2))
    assert main(["codecs", str(tmp_path / "c.npy"), "--codecs", "quant8,cosmos", "--cosmos-dir", str(cosmos_dir)]) == 0
    out = capsys.readouterr().out
    assert "| cosmos-DI16x16 | neural |" in out and "| cosmos-CI8x8 | neural |" in out
