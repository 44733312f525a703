"""Stage 1: a VQ autoencoder with one encoder (seismic) and two decoders (seismic, velocity).

The encoder maps gathers to a continuous latent z (zdim x L x L); decoding quantizes z against a
codebook and decodes both modalities from it. One VQ shares a codebook between the decoders; the
two-VQ variant quantizes z with a codebook per modality. As in latent diffusion, Stage 2 diffuses
the continuous z and quantization happens in the decoder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class VQConfig:
    ch: int = 64
    mults: tuple[int, ...] = (1, 2, 2, 4, 4, 4, 4, 8)
    res_blocks: int = 2
    latent: int = 16
    zdim: int = 32
    codes: int = 8192
    two_vq: bool = False
    beta: float = 0.25  # commitment weight

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mults"] = list(self.mults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VQConfig:
        d = dict(d)
        d["mults"] = tuple(d["mults"])
        return cls(**d)


VQ_CONFIGS = {
    "full": VQConfig(),
    "tiny": VQConfig(ch=16, mults=(1, 2, 2, 4), res_blocks=1, latent=8, zdim=8, codes=256),
    "micro": VQConfig(ch=8, mults=(1, 2), res_blocks=1, latent=8, zdim=8, codes=64),  # tests
}


def norm_groups(c: int) -> int:
    """Groups of a GroupNorm over ``c`` channels: up to 8, dividing ``c``."""
    return math.gcd(c, 8)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int = 0):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(norm_groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(norm_groups(cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout) if temb else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, t=None):
        h = self.c1(F.silu(self.n1(x)))
        if self.t is not None:
            h = h + self.t(t)[:, :, None, None]
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


def _strides(size: tuple[int, int], latent: int) -> list[tuple[int, int]]:
    """Per-stage (time, space) strides that bring `size` down to latent x latent by halvings."""
    h, w = size
    out = []
    while h > latent or w > latent:
        s = (2 if h > latent else 1, 2 if w > latent else 1)
        out.append(s)
        h, w = h // s[0], w // s[1]
    if (h, w) != (latent, latent):
        raise ValueError(f"size {size} does not halve down to {latent} x {latent}")
    return out


class Encoder(nn.Module):
    def __init__(self, cin: int, size, cfg: VQConfig):
        super().__init__()
        strides = _strides(size, cfg.latent)
        chans = [cfg.ch * cfg.mults[min(i, len(cfg.mults) - 1)] for i in range(len(strides) + 1)]
        layers = [nn.Conv2d(cin, chans[0], 3, padding=1)]
        for i, s in enumerate(strides):
            layers += [ResBlock(chans[i], chans[i]) for _ in range(cfg.res_blocks)]
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 3, stride=s, padding=1))
        layers += [ResBlock(chans[-1], chans[-1]) for _ in range(cfg.res_blocks)]
        layers += [nn.GroupNorm(norm_groups(chans[-1]), chans[-1]), nn.SiLU(), nn.Conv2d(chans[-1], cfg.zdim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cout: int, size, cfg: VQConfig):
        super().__init__()
        strides = _strides(size, cfg.latent)[::-1]
        n = len(strides)
        chans = [cfg.ch * cfg.mults[min(n - i, len(cfg.mults) - 1)] for i in range(n + 1)]
        self.inp = nn.Conv2d(cfg.zdim, chans[0], 3, padding=1)
        self.stages = nn.ModuleList()
        for i, _s in enumerate(strides):
            self.stages.append(
                nn.ModuleDict(
                    {
                        "res": nn.Sequential(*[ResBlock(chans[i], chans[i]) for _ in range(cfg.res_blocks)]),
                        "conv": nn.Conv2d(chans[i], chans[i + 1], 3, padding=1),
                    }
                )
            )
        self.strides = strides
        self.out = nn.Sequential(
            *[ResBlock(chans[-1], chans[-1]) for _ in range(cfg.res_blocks)],
            nn.GroupNorm(norm_groups(chans[-1]), chans[-1]),
            nn.SiLU(),
            nn.Conv2d(chans[-1], cout, 3, padding=1),
        )

    def forward(self, z):
        h = self.inp(z)
        for stage, s in zip(self.stages, self.strides):
            h = stage["conv"](F.interpolate(stage["res"](h), scale_factor=s, mode="nearest"))
        return self.out(h)


class VectorQuantizer(nn.Module):
    """Nearest-code quantization of l2-normalised vectors (codes on the unit sphere, as in ViT-VQGAN),
    straight-through gradient, codebook and commitment losses. Normalising keeps the encoder's scale
    from running away from the codebook, which otherwise stalls short CPU trainings."""

    def __init__(self, codes: int, dim: int, beta: float):
        super().__init__()
        self.codebook = nn.Embedding(codes, dim)
        nn.init.normal_(self.codebook.weight)
        self.beta = beta

    def forward(self, z):
        b, d, h, w = z.shape
        zn = F.normalize(z, dim=1)
        flat = zn.permute(0, 2, 3, 1).reshape(-1, d)
        e = F.normalize(self.codebook.weight, dim=1)
        idx = (flat @ e.t()).argmax(1)
        q = e[idx].view(b, h, w, d).permute(0, 3, 1, 2)
        loss = F.mse_loss(q, zn.detach()) + self.beta * F.mse_loss(zn, q.detach())
        return zn + (q - zn).detach(), loss, idx.view(b, h, w)


class VQAE(nn.Module):
    def __init__(self, shots: int, seis_size, vel_size, cfg: VQConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(shots, seis_size, cfg)
        self.dec_s = Decoder(shots, seis_size, cfg)
        self.dec_v = Decoder(1, vel_size, cfg)
        self.vq_s = VectorQuantizer(cfg.codes, cfg.zdim, cfg.beta)
        self.vq_v = VectorQuantizer(cfg.codes, cfg.zdim, cfg.beta) if cfg.two_vq else self.vq_s

    def encode(self, s):
        """Continuous latent z (B, zdim, L, L): what Stage 2 diffuses."""
        return self.encoder(s)

    def decode(self, z):
        """(seismic, velocity, vq loss) from a continuous latent, quantized on the way."""
        qs, loss, _ = self.vq_s(z)
        if self.cfg.two_vq:
            qv, loss_v, _ = self.vq_v(z)
            loss = loss + loss_v
        else:
            qv = qs
        return self.dec_s(qs), self.dec_v(qv), loss

    def loss(self, s, v):
        s_hat, v_hat, vq = self.decode(self.encode(s))
        ls, lv = F.l1_loss(s_hat, s), F.l1_loss(v_hat, v)
        return ls + lv + vq, {"seismic_l1": ls.item(), "velocity_l1": lv.item(), "vq": vq.item()}

    def invert(self, s):
        """Stage 1 inversion: velocity straight from the encoded gathers."""
        return self.decode(self.encode(s))[1]
