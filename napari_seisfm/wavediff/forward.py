"""The acoustic forward model F: velocity map -> shot gathers, batched in torch (CPU or GPU).

2-D constant-density acoustic wave equation u_tt = v^2 (lap u + s), second order in time, eighth
order in space, Ricker source, an absorbing (damping) layer around the model on all sides. The
default geometry is OpenFWI's (70 x 70 cells of 10 m, 5 sources and 70 receivers one cell below the
surface, 1000 samples of 1 ms, 15 Hz), so gathers are comparable with the study's data.

Written here rather than taken from deepwave: the study needs only this one propagator, it runs
batched on CPU and GPU in a few dozen lines, and the tests check it against the analytic 2-D
solution (tests/test_wavediff_forward.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import SeisfmError

# Eighth-order central second derivative: centre and the four symmetric neighbours.
STENCIL = (-205 / 72, 8 / 5, -1 / 5, 8 / 315, -1 / 560)
# Von Neumann limit of leapfrog + this stencil in 2-D: v dt / dx <= 2 / sqrt(2 * sum|stencil|).
CFL_LIMIT = 2 / math.sqrt(2 * (abs(STENCIL[0]) + 2 * sum(abs(c) for c in STENCIL[1:])))


@dataclass(frozen=True)
class Geometry:
    """Grid, acquisition and source: everything F needs besides the velocity map."""

    nz: int = 70
    nx: int = 70
    dx: float = 10.0  # m, the same in both directions
    nt: int = 1000
    dt: float = 0.001  # s
    freq: float = 15.0  # Hz, Ricker peak frequency
    n_sources: int = 5
    n_receivers: int = 70
    depth: int = 1  # grid row of sources and receivers
    pad: int = 40  # cells of absorbing layer on every side
    vmax: float = 4500.0  # m/s, the fastest velocity the grid and time step must carry (CFL)

    def source_x(self) -> list[int]:
        return [int(round(x)) for x in np.linspace(0, self.nx - 1, self.n_sources)]

    def receiver_x(self) -> list[int]:
        return [int(round(x)) for x in np.linspace(0, self.nx - 1, self.n_receivers)]

    def cfl(self, vmax: float | None = None) -> float:
        return (self.vmax if vmax is None else vmax) * self.dt / self.dx

    def check(self, vmax: float | None = None) -> None:
        """Refuse a grid/time step that would blow up, naming the CFL number and its limit."""
        for name in ("dt", "dx"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise SeisfmError(f"bad geometry: {name} = {value:g} must be a positive number")
        c = self.cfl(vmax)
        if not c <= CFL_LIMIT:
            v = self.vmax if vmax is None else vmax
            raise SeisfmError(
                f"unstable finite-difference settings: CFL number v*dt/dx = {v:g}*{self.dt:g}/{self.dx:g} = {c:.3f} "
                f"exceeds the limit {CFL_LIMIT:.3f} of this scheme; use a smaller dt or a larger dx"
            )
        for name in ("nz", "nx", "nt", "n_sources", "n_receivers"):
            if getattr(self, name) < 1:
                raise SeisfmError(f"bad geometry: {name} = {getattr(self, name)} must be at least 1")
        if not 0 <= self.depth < self.nz:
            raise SeisfmError(f"bad geometry: source/receiver row {self.depth} is outside the {self.nz}-row grid")

    def to_dict(self) -> dict:
        return asdict(self)


OPENFWI = Geometry()


def ricker(freq: float, nt: int, dt: float, delay: float | None = None) -> np.ndarray:
    """Ricker wavelet of peak frequency `freq`, centred at `delay` (default 1/freq) seconds."""
    t0 = 1.0 / freq if delay is None else delay
    a = (math.pi * freq * (np.arange(nt) * dt - t0)) ** 2
    return ((1 - 2 * a) * np.exp(-a)).astype(np.float64)


def check_velocity(v, what: str = "velocity map") -> None:
    """Non-finite or non-positive velocities make no physical sense: one clear line."""
    arr = v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
    if not np.isfinite(arr).all():
        raise SeisfmError(f"{what}: contains NaN or infinite values ({int((~np.isfinite(arr)).sum())} cells)")
    if (arr <= 0).any():
        raise SeisfmError(f"{what}: contains non-positive velocities (min {float(arr.min()):g} m/s)")


def _damping(n: int, pad: int, vmax: float, dx: float) -> np.ndarray:
    """Quadratic damping profile, zero inside the model and in the inner quarter of the pad, rising
    across the rest (Cerjan-style). The undamped strip keeps waves that graze the model's edge, such
    as the direct wave along the surface, on time (tests/test_wavediff_forward.py)."""
    d = np.zeros(n)
    free = pad // 4
    ramp_n = pad - free
    if ramp_n <= 0:
        return d
    d0 = 3 * vmax * math.log(1e4) / (2 * ramp_n * dx)  # about 1e-4 reflection at normal incidence
    ramp = np.zeros(pad)
    ramp[:ramp_n] = ((np.arange(ramp_n, 0, -1) - 0.5) / ramp_n) ** 2 * d0
    d[:pad] = ramp
    d[n - pad :] = ramp[::-1]
    return d


def simulate(velocity, geometry: Geometry = OPENFWI, *, device=None, batch: int | None = None) -> torch.Tensor:
    """Shot gathers of velocity maps: (B, nz, nx) or (nz, nx) in m/s -> (B, n_sources, nt, n_receivers).

    Float32 on `device` (default: the velocity's device). `batch` bounds how many maps run at once."""
    g = geometry
    v = torch.as_tensor(velocity, dtype=torch.float32)
    if device is not None:
        v = v.to(device)
    single = v.ndim == 2
    if single:
        v = v[None]
    if v.ndim != 3 or tuple(v.shape[1:]) != (g.nz, g.nx):
        raise SeisfmError(f"velocity map of shape {tuple(v.shape)}; the geometry expects (N, {g.nz}, {g.nx})")
    check_velocity(v)
    g.check(max(g.vmax, float(v.max())))
    if batch and v.shape[0] > batch:
        out = torch.cat([simulate(v[i : i + batch], g) for i in range(0, v.shape[0], batch)])
    else:
        out = _propagate(v, g)
    return out[0] if single else out


@torch.no_grad()
def _propagate(v: torch.Tensor, g: Geometry) -> torch.Tensor:
    """The time loop. Every step writes into buffers made once (the Laplacian, one sum of shifted fields and
    the next field, which lands in the oldest buffer): no tensor is allocated per step. The arithmetic is the
    plain formula's, operation for operation (``lap = 2 S0 u + sum_k S_k (four shifted u)``,
    ``next = (2 u - a_minus u_prev + c2 lap) a_plus``), so the gathers are bit-identical to a version that
    allocates a new tensor per term (tests/test_wavediff_forward.py) at about 0.6x its time on a CPU
    (benchmarks/bench_wavediff.py). No gradient flows through F (nothing needs one)."""
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
    src = src_amp[:, :, None] * wav[None, None, :]  # (B, ns, nt): each step's injection, as src_amp * wav[it]
    h = 4  # stencil half-width; zeros beyond the layer
    u_prev = torch.zeros(b, ns, hz + 2 * h, hx + 2 * h, device=dev)
    u = torch.zeros_like(u_prev)
    out = torch.empty(b, ns, g.nt, len(rx), device=dev)
    lap = torch.empty(b, ns, hz, hx, device=dev)
    part = torch.empty_like(lap)
    inner = (slice(None), slice(None), slice(h, h + hz), slice(h, h + hx))
    two_s0 = 2 * STENCIL[0]
    for it in range(g.nt):
        out[:, :, it] = u[:, :, h + sz, h + rx]  # the wavefield at time it * dt (zero at t = 0)
        ui, up = u[inner], u_prev[inner]
        torch.mul(ui, two_s0, out=lap)
        for k in range(1, 5):
            torch.add(u[:, :, h - k : h - k + hz, h : h + hx], u[:, :, h + k : h + k + hz, h : h + hx], out=part)
            part += u[:, :, h : h + hz, h - k : h - k + hx]
            part += u[:, :, h : h + hz, h + k : h + k + hx]
            part *= STENCIL[k]
            lap += part
        up *= a_minus  # a_minus u_prev
        torch.mul(ui, 2, out=part)
        part -= up  # 2 u - a_minus u_prev
        lap *= c2
        part += lap
        torch.mul(part, a_plus, out=up)  # the next field, in the oldest buffer (its zero border stays zero)
        up[:, shots, sz, sx] += src[:, :, it]
        u_prev, u = u, u_prev
    return out
