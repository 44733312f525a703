"""Generated pairs as training data (the study's Table 3 design): an InversionNet-style network
(gathers -> velocity, a plain convolutional encoder-decoder) trained on generated pairs plus a small
fraction of real pairs, against the same fraction alone, scored by velocity MAE on held-out pairs."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vqae import Decoder, Encoder, VQConfig


class InversionNet(nn.Module):
    def __init__(self, setup, cfg: VQConfig):
        super().__init__()
        cfg = dataclasses.replace(cfg, zdim=cfg.ch * 2)
        self.enc = Encoder(setup.shots, setup.seis_size, cfg)
        self.dec = Decoder(1, setup.vel_size, cfg)

    def forward(self, s):
        return self.dec(self.enc(s))


@torch.no_grad()
def generate(model, n: int, seed: int = 0, batch: int = 256):
    """n (seismic, velocity) pairs from the diffusion model, in the networks' space."""
    g = torch.Generator().manual_seed(seed)
    ss, vs = [], []
    for i in range(0, n, batch):
        z, _ = model.ddpm.sample((min(batch, n - i), *model.latent_shape), generator=g)
        s, v = model.decode(z)
        ss.append(s)
        vs.append(v.clamp(-1, 1))
    return torch.cat(ss), torch.cat(vs)


def train_inversion(s, v, setup, cfg: VQConfig, steps: int, batch: int = 32, lr: float = 1e-3, seed: int = 0):
    torch.manual_seed(seed)
    net = InversionNet(setup, cfg)
    opt = torch.optim.Adam(net.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, s.shape[0], (min(batch, s.shape[0]),), generator=g)
        loss = F.l1_loss(net(s[idx]), v[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def mae(net, s, v) -> float:
    return float(
        torch.cat(
            [(net(s[i : i + 64]).clamp(-1, 1) - v[i : i + 64]).abs().flatten(1).mean(1) for i in range(0, s.shape[0], 64)]
        ).mean()
    )


def table3(generated, real, test, fractions, setup, cfg: VQConfig, steps: int, seed: int = 0) -> list[dict]:
    """Rows {setting, n_train, mae}: generated alone, and per fraction: fraction of real alone and with generated."""
    rows = []
    gs, gv = generated
    rs, rv = real

    def row(name, s, v):
        rows.append(
            {"setting": name, "n_train": int(s.shape[0]), "mae": mae(train_inversion(s, v, setup, cfg, steps, seed=seed), *test)}
        )

    row("generated", gs, gv)
    for f in fractions:
        k = max(1, int(round(f * rs.shape[0])))
        row(f"{f:.0%} real", rs[:k], rv[:k])
        row(f"generated + {f:.0%} real", torch.cat([gs, rs[:k]]), torch.cat([gv, rv[:k]]))
    return rows
