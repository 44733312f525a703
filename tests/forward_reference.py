"""The WaveDiffusion forward solver's time loop as it was before issue 24 (a new tensor per term per step),
frozen: the reference tests/test_wavediff_forward.py and benchmarks/bench_wavediff.py compare the in-place
solver (napari_seisfm/wavediff/forward.py) against."""

from __future__ import annotations

import torch

from napari_seisfm.wavediff.forward import STENCIL, Geometry, _damping, ricker


def _propagate(v: torch.Tensor, g: Geometry) -> torch.Tensor:
    dev = v.device
    b, p = v.shape[0], g.pad
    ns = g.n_sources
    # velocity extended into the absorbing layer by repeating the edge
    vp = torch.nn.functional.pad(v[:, None], (p, p, p, p), mode="replicate")[:, 0]
    hz, hx = vp.shape[1:]
    dz = torch.as_tensor(_damping(hz, p, g.vmax, g.dx), dtype=torch.float32, device=dev)
    dxp = torch.as_tensor(_damping(hx, p, g.vmax, g.dx), dtype=torch.float32, device=dev)
    damp = (dz[:, None] + dxp[None, :]) * g.dt  # d * dt, per cell
    c2 = (vp * g.dt / g.dx) ** 2  # (B, hz, hx)
    c2 = c2[:, None].expand(b, ns, hz, hx)
    a_plus = 1 / (1 + damp)
    a_minus = 1 - damp
    wav = torch.as_tensor(ricker(g.freq, g.nt, g.dt), dtype=torch.float32, device=dev)
    sz, sx = g.depth + p, torch.as_tensor(g.source_x(), device=dev) + p
    rx = torch.as_tensor(g.receiver_x(), device=dev) + p
    shots = torch.arange(ns, device=dev)
    # source term: v^2 dt^2 f(t) / dx^2 at the source cell (a discrete delta)
    src_amp = c2[:, shots, sz, sx]  # (B, ns)
    h = 4  # stencil half-width; zeros beyond the layer
    u_prev = torch.zeros(b, ns, hz + 2 * h, hx + 2 * h, device=dev)
    u = torch.zeros_like(u_prev)
    out = torch.empty(b, ns, g.nt, len(rx), device=dev)
    inner = (slice(None), slice(None), slice(h, h + hz), slice(h, h + hx))
    for it in range(g.nt):
        out[:, :, it] = u[:, :, h + sz, h + rx]  # the wavefield at time it * dt (zero at t = 0)
        lap = 2 * STENCIL[0] * u[inner]
        for k in range(1, 5):
            lap = lap + STENCIL[k] * (
                u[:, :, h - k : h - k + hz, h : h + hx]
                + u[:, :, h + k : h + k + hz, h : h + hx]
                + u[:, :, h : h + hz, h - k : h - k + hx]
                + u[:, :, h : h + hz, h + k : h + k + hx]
            )
        nxt = (2 * u[inner] - a_minus * u_prev[inner] + c2 * lap) * a_plus
        nxt[:, shots, sz, sx] += src_amp * wav[it]
        u_prev[inner] = nxt  # the oldest buffer becomes the newest; its zero border stays zero
        u_prev, u = u, u_prev
    return out
