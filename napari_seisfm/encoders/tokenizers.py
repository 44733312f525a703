"""Tokenizers: how a seismic window becomes a sequence of patch tokens with positions.

Three tokenizations of the NCS-models paper, all single-channel:

- ``2d``: one ``W x W`` section image (rows = time, columns = traces), ``P x P`` patches,
  2-D sin-cos position encoding (the MAE recipe).
- ``2.5d``: four ``W x W`` views of the same neighbourhood (inline, crossline, 45 and 135
  degree diagonals), each patchified with the same projection and concatenated into one
  sequence. Each token gets the 2-D sin-cos code of its (trace, time) position inside its view
  plus a learned projection of the cyclic orientation code ``(cos 2 theta, sin 2 theta)`` of
  its view. ``2 theta`` makes the code depend on the line, not its direction: 0 and 180
  degrees give the same code.
- ``3d``: a ``W x W x W`` block, ``P x P x P`` patches, 3-D sin-cos encoding.

Position encodings are fixed buffers (not parameters, not in the state dict): the MAE
recipe uses fixed sin-cos codes, and a fixed code cannot disagree with a checkpoint.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

# Orientation of the four 2.5D views, degrees from the crossline axis of the cube. The inline
# view (a section at fixed inline, traces along crossline) is 0; the crossline view is 90.
VIEW_ANGLES = (0.0, 90.0, 45.0, 135.0)
VIEW_NAMES = ("inline", "crossline", "diagonal 45", "diagonal 135")


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """MAE's 1-D sin-cos code: ``dim/2`` frequencies 1/10000^(2k/dim), sin half then cos half."""
    if dim % 2:
        raise ValueError(f"sin-cos code needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, rows: int, cols: int) -> np.ndarray:
    """``(rows*cols, dim)`` code, tokens row-major; first half encodes the column, second the row
    (the layout of MAE's ``get_2d_sincos_pos_embed``, so codes match MAE checkpoints)."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos code needs a width divisible by 4, got {dim}")
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.concatenate([sincos_1d(dim // 2, c), sincos_1d(dim // 2, r)], axis=1)


def sincos_3d(dim: int, n0: int, n1: int, n2: int) -> np.ndarray:
    """``(n0*n1*n2, dim)`` code, one third of the (even) channels per axis; channels left over
    when ``dim`` is not a multiple of 6 are zero."""
    per = (dim // 6) * 2
    if per == 0:
        raise ValueError(f"3-D sin-cos code needs a width of at least 6, got {dim}")
    g = np.meshgrid(np.arange(n0), np.arange(n1), np.arange(n2), indexing="ij")
    code = np.concatenate([sincos_1d(per, a) for a in g], axis=1)
    return np.pad(code, ((0, 0), (0, dim - code.shape[1])))


def orientation_code(theta_deg: float | np.ndarray) -> np.ndarray:
    """Cyclic orientation code ``(cos 2 theta, sin 2 theta)``: period 180 degrees."""
    t = np.deg2rad(np.asarray(theta_deg, dtype=np.float64)) * 2.0
    return np.stack([np.cos(t), np.sin(t)], axis=-1)


class Tokenizer(nn.Module):
    """Patch projection + fixed position code. Subclasses define the geometry."""

    ndim_patch: int  # 2 or 3
    n_views: int = 1

    def __init__(self, dim: int, window: int, patch: int):
        super().__init__()
        if window % patch:
            raise ValueError(f"window {window} is not a multiple of patch {patch}")
        self.dim, self.window, self.patch = dim, window, patch
        self.grid = window // patch  # tokens per axis per view

    @property
    def n_tokens(self) -> int:
        return self.n_views * self.grid**self.ndim_patch

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (without batch)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *input_shape)`` -> ``(B, n_tokens, dim)`` tokens with position codes added."""
        t = self.project(x)
        return t + self.position_code().to(t.dtype)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def position_code(self) -> torch.Tensor:
        return self.pos_embed

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *input_shape)`` -> ``(B, n_tokens, patch**ndim)``: the MAE reconstruction target,
        tokens in the same order as :meth:`forward`."""
        raise NotImplementedError

    def unpatchify(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`patchify`: ``(B, n_tokens, patch**ndim)`` -> ``(B, *input_shape)``."""
        raise NotImplementedError


class Tokenizer2D(Tokenizer):
    """One section image ``(W_time, W_trace)``: rows are time, columns traces."""

    ndim_patch = 2

    def __init__(self, dim: int, window: int = 224, patch: int = 16):
        super().__init__(dim, window, patch)
        self.proj = nn.Conv2d(1, dim, patch, stride=patch)
        code = sincos_2d(dim, self.grid, self.grid)
        self.register_buffer("pos_embed", torch.from_numpy(code).float(), persistent=False)

    @property
    def input_shape(self):
        return (self.window, self.window)

    def project(self, x):
        return self.proj(x.unsqueeze(1)).flatten(2).transpose(1, 2)

    def patchify(self, x):
        b, p, g = x.shape[0], self.patch, self.grid
        x = x.reshape(b, g, p, g, p).permute(0, 1, 3, 2, 4)
        return x.reshape(b, g * g, p * p)

    def unpatchify(self, t):
        b, p, g = t.shape[0], self.patch, self.grid
        return t.reshape(b, g, g, p, p).permute(0, 1, 3, 2, 4).reshape(b, g * p, g * p)


class Tokenizer25D(Tokenizer2D):
    """Four views ``(4, W_time, W_trace)`` of one neighbourhood, one joint sequence."""

    n_views = 4

    def __init__(self, dim: int, window: int = 224, patch: int = 16, angles=VIEW_ANGLES):
        super().__init__(dim, window, patch)
        self.n_views = len(angles)
        self.register_buffer("view_code", torch.from_numpy(orientation_code(np.asarray(angles))).float(), persistent=False)
        # learned map of the cyclic code into the token width (3 * dim parameters at most)
        self.orient_embed = nn.Linear(2, dim, bias=False)

    @property
    def input_shape(self):
        return (self.n_views, self.window, self.window)

    def project(self, x):
        b, v = x.shape[:2]
        t = super().project(x.reshape(b * v, *x.shape[2:]))
        return t.reshape(b, v * t.shape[1], t.shape[2])

    def unpatchify(self, t):
        b, v = t.shape[0], self.n_views
        x = super().unpatchify(t.reshape(b * v, t.shape[1] // v, t.shape[2]))
        return x.reshape(b, v, *x.shape[1:])

    def position_code(self):
        per_view = self.pos_embed.unsqueeze(0) + self.orient_embed(self.view_code).unsqueeze(1)
        return per_view.reshape(-1, self.dim)

    def patchify(self, x):
        b, v = x.shape[:2]
        t = super().patchify(x.reshape(b * v, *x.shape[2:]))
        return t.reshape(b, v * t.shape[1], t.shape[2])


class Tokenizer3D(Tokenizer):
    """One block ``(W_il, W_xl, W_time)`` in cube axis order, ``P^3`` patches."""

    ndim_patch = 3

    def __init__(self, dim: int, window: int = 224, patch: int = 16):
        super().__init__(dim, window, patch)
        self.proj = nn.Conv3d(1, dim, patch, stride=patch)
        g = self.grid
        self.register_buffer("pos_embed", torch.from_numpy(sincos_3d(dim, g, g, g)).float(), persistent=False)

    @property
    def input_shape(self):
        return (self.window,) * 3

    def project(self, x):
        return self.proj(x.unsqueeze(1)).flatten(2).transpose(1, 2)

    def patchify(self, x):
        b, p, g = x.shape[0], self.patch, self.grid
        x = x.reshape(b, g, p, g, p, g, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(b, g**3, p**3)

    def unpatchify(self, t):
        b, p, g = t.shape[0], self.patch, self.grid
        return t.reshape(b, g, g, g, p, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, g * p, g * p, g * p)


TOKENIZERS = {"2d": Tokenizer2D, "2.5d": Tokenizer25D, "3d": Tokenizer3D}


def make_tokenizer(kind: str, dim: int, window: int, patch: int) -> Tokenizer:
    try:
        cls = TOKENIZERS[kind]
    except KeyError:
        raise ValueError(f"unknown tokenization {kind!r}; known: {', '.join(TOKENIZERS)}") from None
    return cls(dim, window, patch)


def view_steps(spacing: tuple[float, float] | None = None, angles=VIEW_ANGLES) -> np.ndarray:
    """Index step ``(d_inline, d_crossline)`` per trace along each 2.5D view.

    ``spacing`` is the distance between neighbouring traces along the inline and crossline
    array axes (e.g. metres). Axis views step one trace. A diagonal view follows the true 45
    (135) degree line in metres with a step of ``sqrt(2) * min(spacing)``, which lands on grid
    nodes ``(1, +-1)`` when the spacing is equal and needs interpolation when it is not.
    """
    s0, s1 = (1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1]))
    if s0 <= 0 or s1 <= 0:
        raise ValueError(f"trace spacing must be positive, got {spacing}")
    m = min(s0, s1)
    steps = []
    for a in angles:
        if a % 180 == 0:
            steps.append((0.0, 1.0))
        elif a % 180 == 90:
            steps.append((1.0, 0.0))
        else:  # unit direction in metres, scaled so the step is sqrt(2)*m for 45 degrees
            r = m * math.sqrt(2.0)
            d_xl, d_il = math.cos(math.radians(a)) * r, math.sin(math.radians(a)) * r
            steps.append((d_il / s0, d_xl / s1))
    return np.round(np.asarray(steps), 12)  # exact grid steps for equal spacing
