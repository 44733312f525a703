"""Stage 2: a DDPM over the Stage 1 latents (small UNet, 1000 steps, the study's linear beta
schedule 0.0015-0.0155), ancestral sampling, and the study's diffusion-refined inversion.

Latents are standardised with the training latents' mean and std before diffusing, so "random
latents" (pure noise, the start of the backward process) live on the same scale as trained ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vqae import ResBlock, norm_groups


@dataclass(frozen=True)
class DiffusionConfig:
    ch: int = 128
    mults: tuple[int, ...] = (1, 2, 2)
    res_blocks: int = 2
    steps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0155

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mults"] = list(self.mults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DiffusionConfig:
        d = dict(d)
        d["mults"] = tuple(d["mults"])
        return cls(**d)


DIFFUSION_CONFIGS = {
    "full": DiffusionConfig(),
    "tiny": DiffusionConfig(ch=32, mults=(1, 2), res_blocks=1),
    "micro": DiffusionConfig(ch=16, mults=(1, 2), res_blocks=1, steps=100),  # tests: 100 steps, not the study's 1000
}


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], 1)


class UNet(nn.Module):
    """Predicts the noise in z_t; one level per multiplier, skip connections, time added in every block."""

    def __init__(self, zdim: int, cfg: DiffusionConfig):
        super().__init__()
        self.tdim = cfg.ch * 4
        self.temb = nn.Sequential(nn.Linear(cfg.ch, self.tdim), nn.SiLU(), nn.Linear(self.tdim, self.tdim))
        self.ch = cfg.ch
        self.inp = nn.Conv2d(zdim, cfg.ch, 3, padding=1)
        chans = [cfg.ch * m for m in cfg.mults]
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        c, skips = cfg.ch, [cfg.ch]
        for i, co in enumerate(chans):
            for _ in range(cfg.res_blocks):
                self.down.append(ResBlock(c, co, self.tdim))
                c = co
                skips.append(c)
            if i < len(chans) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, self.tdim), ResBlock(c, c, self.tdim)])
        for i, co in reversed(list(enumerate(chans))):
            for _ in range(cfg.res_blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), co, self.tdim))
                c = co
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(nn.GroupNorm(norm_groups(c), c), nn.SiLU(), nn.Conv2d(c, zdim, 3, padding=1))

    def forward(self, x, t):
        te = self.temb(timestep_embedding(t, self.ch))
        h = self.inp(x)
        hs = [h]
        for m in self.down:
            h = m(h, te) if isinstance(m, ResBlock) else m(h)
            hs.append(h)
        for m in self.mid:
            h = m(h, te)
        for m in self.up:
            h = m(torch.cat([h, hs.pop()], 1), te) if isinstance(m, ResBlock) else m(h)
        return self.out(h)


class DDPM(nn.Module):
    def __init__(self, zdim: int, cfg: DiffusionConfig):
        super().__init__()
        self.cfg = cfg
        self.net = UNet(zdim, cfg)
        # latent diffusion's "linear" schedule: linear in sqrt(beta)
        betas = torch.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, cfg.steps, dtype=torch.float64) ** 2
        ab = torch.cumprod(1 - betas, 0)
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        for name, val in {
            "betas": betas,
            "alphas_bar": ab,
            "alphas_bar_prev": ab_prev,
            "post_var": betas * (1 - ab_prev) / (1 - ab),
            "post_c0": betas * ab_prev.sqrt() / (1 - ab),
            "post_ct": (1 - ab_prev) * (1 - betas).sqrt() / (1 - ab),
        }.items():
            self.register_buffer(name, val.float(), persistent=False)

    def q_sample(self, z0, t: torch.Tensor, noise=None):
        """The forward process in one jump: z_t = sqrt(ab_t) z0 + sqrt(1 - ab_t) eps."""
        noise = torch.randn_like(z0) if noise is None else noise
        ab = self.alphas_bar[t].view(-1, 1, 1, 1)
        return ab.sqrt() * z0 + (1 - ab).sqrt() * noise

    def loss(self, z0):
        """The study's L1 noise-prediction loss at a uniformly drawn step."""
        t = torch.randint(0, self.cfg.steps, (z0.shape[0],), device=z0.device)
        noise = torch.randn_like(z0)
        return F.l1_loss(self.net(self.q_sample(z0, t, noise), t), noise)

    @torch.no_grad()
    def p_sample(self, zt, t: int, generator=None):
        """One backward step z_t -> z_{t-1} (ancestral DDPM, posterior variance)."""
        tt = torch.full((zt.shape[0],), t, device=zt.device, dtype=torch.long)
        eps = self.net(zt, tt)
        ab = self.alphas_bar[t]
        z0 = ((zt - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-6, 6)
        mean = self.post_c0[t] * z0 + self.post_ct[t] * zt
        if t == 0:
            return mean
        noise = torch.randn(zt.shape, generator=generator).to(zt.device)
        return mean + self.post_var[t].sqrt() * noise

    @torch.no_grad()
    def sample(self, shape, *, start=None, t_start: int | None = None, generator=None, record=(), on_step=None):
        """Run the backward process from pure noise (or `start` at step t_start) to z_0.

        Returns z_0 and {step: z_step} for the steps in `record` (the state before that step's
        denoising; step -1 is z_0)."""
        t_start = self.cfg.steps - 1 if t_start is None else t_start
        z = torch.randn(shape, generator=generator).to(self.betas.device) if start is None else start
        kept = {}
        for t in range(t_start, -1, -1):
            if t in record:
                kept[t] = z.clone()
            z = self.p_sample(z, t, generator)
            if on_step:
                on_step(t_start - t + 1, t_start + 1)
        if -1 in record:
            kept[-1] = z.clone()
        return z, kept
