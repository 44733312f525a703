"""The PDE deviation ||D_s(z) - F(D_v(z))|| of a latent, and its curve over the diffusion steps.

The deviation is the mean squared difference, in the networks' preprocessed seismic space, between
the decoded gathers and the gathers the finite-difference solver produces from the decoded velocity
map: zero when the pair obeys the wave equation (the study's Figure 5 measure).
"""

from __future__ import annotations

import torch

from .data import simulate_model_space


@torch.no_grad()
def deviation(model, z) -> torch.Tensor:
    """Per-latent PDE deviation (B,)."""
    s_hat, v_hat = model.decode(z)
    return pair_deviation(s_hat, v_hat, model.setup)


def pair_deviation(s_model, v_model, setup) -> torch.Tensor:
    """Per-pair deviation of (seismic, velocity) given in the networks' space."""
    s_true = simulate_model_space(v_model, setup).to(s_model.device)
    return (s_model - s_true).pow(2).flatten(1).mean(1)


@torch.no_grad()
def forward_curve(model, z0, steps, generator=None) -> dict[int, torch.Tensor]:
    """Deviation of noised trained latents z_t = q(z_t | z_0) at each step in `steps`."""
    out = {}
    for t in steps:
        noise = torch.randn(z0.shape, generator=generator).to(z0.device)
        zt = z0 if t < 0 else model.ddpm.q_sample(z0, torch.full((z0.shape[0],), t, device=z0.device), noise)
        out[t] = deviation(model, zt)
    return out


@torch.no_grad()
def backward_curve(model, n, steps, generator=None, on_step=None) -> dict[int, torch.Tensor]:
    """Deviation along the backward process from pure noise; step T-1 is the random latent, -1 the sample."""
    _, kept = model.ddpm.sample((n, *model.latent_shape), generator=generator, record=set(steps), on_step=on_step)
    return {t: deviation(model, z) for t, z in sorted(kept.items(), reverse=True)}


def curve_steps(total: int, points: int = 11) -> list[int]:
    """Evenly spread steps 0 .. total-1 (forward); the backward curve adds -1 for the final sample."""
    return sorted({round(i * (total - 1) / (points - 1)) for i in range(points)})


@torch.no_grad()
def measure(model, seismic_model, n_random: int, points: int = 11, seed: int = 0, on_step=None) -> dict:
    """Trained, random and denoised-random deviation plus both curves (means over the latents)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    z0 = model.encode(seismic_model)
    steps = curve_steps(model.diff_cfg.steps, points)
    fwd = forward_curve(model, z0, [-1] + steps, g)
    top = model.diff_cfg.steps - 1
    bwd = backward_curve(model, n_random, [top - k for k in steps] + [-1], g, on_step)
    mean = {k: float(v.mean()) for k, v in fwd.items()}
    back = {k: float(v.mean()) for k, v in bwd.items()}
    return {
        "trained": mean[-1],
        "random": back[top],
        "denoised_random": back[-1],
        "forward": [[t, mean[t]] for t in steps],
        "backward": [[top - t, v] for t, v in sorted(back.items(), reverse=True)],  # backward step counted from noise
        "n_trained": int(z0.shape[0]),
        "n_random": n_random,
    }
