"""Inversion: Stage 1 (velocity decoded from the encoded gathers) and the study's diffusion
refinement: over the last few backward steps, draw N candidate latents per step and keep the one
whose decoded gathers fit the observed gathers best."""

from __future__ import annotations

import torch


@torch.no_grad()
def invert_stage1(model, seismic_model) -> torch.Tensor:
    return model.decode(model.encode(seismic_model))[1]


@torch.no_grad()
def invert_refined(model, seismic_model, steps: int = 10, candidates: int = 16, seed: int = 0) -> torch.Tensor:
    """Velocity (B, 1, H, W) after `steps` best-of-`candidates` backward steps from the encoded gathers."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    z0 = model.encode(seismic_model)
    b = z0.shape[0]
    t0 = steps - 1
    noise = torch.randn(z0.shape, generator=g).to(z0.device)
    z = model.ddpm.q_sample(z0, torch.full((b,), t0, device=z0.device), noise)
    for t in range(t0, -1, -1):
        cand = model.ddpm.p_sample(z.repeat_interleave(candidates, 0), t, g)  # (b * candidates, ...)
        s_hat, _ = model.decode(cand)
        target = seismic_model.repeat_interleave(candidates, 0)
        misfit = (s_hat - target).pow(2).flatten(1).mean(1).view(b, candidates)
        best = misfit.argmin(1)
        z = cand.view(b, candidates, *z0.shape[1:])[torch.arange(b), best]
    return model.decode(z)[1]
