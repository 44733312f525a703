"""Seismic-velocity pairs: OpenFWI-like velocity maps, their simulated gathers, OpenFWI's .npy files,
and the study's preprocessing (resizing, a log-type transform of seismic, scaling to [-1, 1]).

A `Setup` fixes everything that must agree between data, model and the PDE check: the forward
geometry, the sizes the networks see, the velocity range and the seismic transform. "openfwi" is the
study's (70 x 70 maps -> 64 x 64, gathers 5 x 1000 x 70 -> 5 x 1024 x 64); "tiny" runs on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SeisfmError
from .forward import Geometry, check_velocity, simulate

KINDS = ("flatvel", "curvevel", "flatfault", "style")


@dataclass(frozen=True)
class Setup:
    geometry: Geometry = field(default_factory=Geometry)
    vel_size: tuple[int, int] = (64, 64)  # what the velocity decoder outputs
    seis_size: tuple[int, int] = (1024, 64)  # time x receivers per shot, what the seismic branch sees
    vmin: float = 1500.0
    vmax: float = 4500.0
    log_eps: float = 1e-3  # sign(s) log(1 + |s| / eps): compresses the direct wave against late reflections
    seis_clip: float = 1.0  # amplitude mapped to +-1 after the transform

    @property
    def shots(self) -> int:
        return self.geometry.n_sources

    def to_dict(self) -> dict:
        d = asdict(self)
        d["vel_size"], d["seis_size"] = list(self.vel_size), list(self.seis_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Setup:
        d = dict(d)
        d["geometry"] = Geometry(**d["geometry"])
        d["vel_size"], d["seis_size"] = tuple(d["vel_size"]), tuple(d["seis_size"])
        return cls(**d)


SETUPS = {
    "openfwi": Setup(),
    # 32 x 32 cells of 10 m, 3 shots, 32 receivers, 0.4 s: about 60 ms per map on one CPU thread
    "tiny": Setup(Geometry(nz=32, nx=32, nt=400, n_sources=3, n_receivers=32, pad=20), (32, 32), (128, 32)),
    # 16 x 16 cells, 2 shots, 0.15 s: for tests and quick looks
    "micro": Setup(Geometry(nz=16, nx=16, nt=150, n_sources=2, n_receivers=16, pad=8), (16, 16), (32, 16)),
}


def setup_named(name: str) -> Setup:
    if name not in SETUPS:
        raise SeisfmError(f"unknown setup {name!r}; choose one of {', '.join(SETUPS)}")
    return SETUPS[name]


# ---- velocity maps -------------------------------------------------------------------------------


def _layer_velocities(rng, n: int, vmin: float, vmax: float) -> np.ndarray:
    """Mostly increasing with depth, as in the FlatVel/CurveVel families, with the odd inversion."""
    v = np.sort(rng.uniform(vmin, vmax, n))
    if rng.random() < 0.2 and n > 2:
        i = rng.integers(1, n)
        v[[i - 1, i]] = v[[i, i - 1]]
    return v


def velocity_map(kind: str, nz: int, nx: int, rng, vmin: float = 1500.0, vmax: float = 4500.0) -> np.ndarray:
    """One (nz, nx) map in m/s of an OpenFWI-like family."""
    z = np.arange(nz)[:, None].astype(float)
    x = np.arange(nx)[None, :].astype(float)
    n = int(rng.integers(2, 6))
    vel = _layer_velocities(rng, n, vmin, vmax)
    tops = np.sort(rng.uniform(0.1, 0.95, n - 1)) * nz
    if kind == "flatvel":
        depth = np.broadcast_to(z, (nz, nx))
    elif kind == "curvevel":
        amp, wav, ph = rng.uniform(0.02, 0.12) * nz, rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
        depth = z - amp * np.sin(2 * np.pi * wav * x / nx + ph)
    elif kind == "flatfault":
        x0, dip = rng.uniform(0.2, 0.8) * nx, rng.uniform(-1.0, 1.0)  # fault trace x = x0 + dip * (z - nz/2)
        throw = rng.uniform(0.05, 0.2) * nz * rng.choice([-1, 1])
        hanging = x > x0 + dip * (z - nz / 2)
        depth = np.where(hanging, z + throw, z) + 0 * x
    elif kind == "style":
        # smooth random field over a depth trend: the look of the Style family, not its recipe
        noise = rng.standard_normal((nz, nx))
        k = np.fft.fftfreq(nz)[:, None] ** 2 + np.fft.fftfreq(nx)[None, :] ** 2
        smooth = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-k * (nz * rng.uniform(0.04, 0.1)) ** 2)))
        smooth /= np.abs(smooth).max() + 1e-9
        trend = vmin + (vmax - vmin) * (0.2 + 0.5 * z / nz)
        return np.clip(trend + 0.3 * (vmax - vmin) * smooth, vmin, vmax).astype(np.float32)
    else:
        raise SeisfmError(f"unknown velocity family {kind!r}; choose from {', '.join(KINDS)}")
    layer = np.searchsorted(tops, depth)
    return vel[layer].astype(np.float32)


def velocity_maps(n: int, setup: Setup, kinds=KINDS, seed: int = 0) -> np.ndarray:
    """n maps (n, nz, nx), the families taken in turn."""
    rng = np.random.default_rng(seed)
    g = setup.geometry
    return np.stack([velocity_map(kinds[i % len(kinds)], g.nz, g.nx, rng, setup.vmin, setup.vmax) for i in range(n)])


def generate_pairs(
    n: int, setup: Setup, kinds=KINDS, seed: int = 0, device=None, batch: int = 64, progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """(seismic (n, shots, nt, receivers), velocity (n, 1, nz, nx)) in OpenFWI's layout."""
    v = velocity_maps(n, setup, kinds, seed)
    out = []
    for i in range(0, n, batch):
        out.append(simulate(v[i : i + batch], setup.geometry, device=device).cpu().numpy())
        if progress:
            progress(min(i + batch, n), n)
    return np.concatenate(out), v[:, None]


# ---- OpenFWI files ---------------------------------------------------------------------------------


def open_pairs(seismic_path, velocity_path, setup: Setup) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map an OpenFWI pair of files (data*.npy, model*.npy) after checking their shapes."""
    g = setup.geometry
    arrays = []
    for path, want, what in (
        (seismic_path, (g.n_sources, g.nt, g.n_receivers), "seismic"),
        (velocity_path, (1, g.nz, g.nx), "velocity"),
    ):
        try:
            a = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise SeisfmError(f"{path}: cannot read as .npy ({e})") from None
        if a.ndim != 4 or tuple(a.shape[1:]) != want:
            raise SeisfmError(f"{path}: {what} of shape {tuple(a.shape)}; expected (N, {', '.join(map(str, want))})")
        arrays.append(a)
    if arrays[0].shape[0] != arrays[1].shape[0]:
        raise SeisfmError(f"{seismic_path} holds {arrays[0].shape[0]} gathers but {velocity_path} {arrays[1].shape[0]} maps")
    return arrays[0], arrays[1]


def save_pairs(folder, seismic: np.ndarray, velocity: np.ndarray) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s, v = folder / "data.npy", folder / "model.npy"
    np.save(s, seismic.astype(np.float32))
    np.save(v, velocity.astype(np.float32))
    return s, v


# ---- the study's preprocessing -----------------------------------------------------------------------


def resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    down = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=down)


def seismic_to_model(s, setup: Setup) -> torch.Tensor:
    """(B, shots, nt, receivers) raw amplitudes -> (B, shots, *seis_size) in [-1, 1]."""
    s = resize(s.float() if torch.is_tensor(s) else torch.from_numpy(np.array(s, dtype=np.float32)), setup.seis_size)
    scale = math.log1p(setup.seis_clip / setup.log_eps)
    return (torch.sign(s) * torch.log1p(s.abs() / setup.log_eps) / scale).clamp(-1, 1)


def velocity_to_model(v, setup: Setup, what: str = "velocity map") -> torch.Tensor:
    """(B, 1, nz, nx) m/s -> (B, 1, *vel_size) in [-1, 1]."""
    v = v.float() if torch.is_tensor(v) else torch.from_numpy(np.array(v, dtype=np.float32))
    check_velocity(v, what)
    v = resize(v, setup.vel_size)
    return ((v - setup.vmin) / (setup.vmax - setup.vmin) * 2 - 1).clamp(-1, 1)


def velocity_from_model(v: torch.Tensor, setup: Setup) -> torch.Tensor:
    """Decoder output (B, 1, *vel_size) -> (B, nz, nx) m/s on the simulation grid, clamped into range."""
    g = setup.geometry
    v = (v.clamp(-1, 1) + 1) / 2 * (setup.vmax - setup.vmin) + setup.vmin
    return resize(v, (g.nz, g.nx))[:, 0]


def simulate_model_space(v_model: torch.Tensor, setup: Setup) -> torch.Tensor:
    """F in the networks' space: a decoded velocity map -> the gathers it really produces, preprocessed."""
    v = velocity_from_model(v_model.detach().float().cpu(), setup).to(v_model.device)
    return seismic_to_model(simulate(v, setup.geometry), setup)
