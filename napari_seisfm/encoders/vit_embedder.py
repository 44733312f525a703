"""ViT encoders behind the ``Embedder`` interface: embeddings on a strided grid by shifted tiling.

A ViT gives one embedding per ``P``-sample patch (P = 16), not per sample. Two ways to get a
vector for every grid point at stride ``s`` (default 4):

1. *centred windows*: one window centred on every grid point, keep the centre token. Honest
   and simple, but one forward pass per grid point: a 1024^3 cube at stride 4 needs 16.7 M
   passes.
2. *shifted tiling* (what this module does): tile the block with windows whose patch grid is
   shifted by ``0, g, 2g, ... P - g`` samples along every tiled axis, ``g = gcd(s, P)``. Every
   token of every window is used: the token whose patch covers ``[p - P/2, p + P/2)`` is the
   embedding of grid point ``p`` (the grid point is the patch centre, rounded up). With
   ``s = 4, P = 16`` that is 4 shifts per tiled axis (16 tilings of a section, 64 of a 3-D
   block) and each pass yields ``(W/P)^2`` (2D, 2.5D) or ``(W/P)^3`` (3D) grid points, so the
   1024^3 cube needs about 16.7 M / 196 = 86 k passes of the 2D/2.5D models instead of 16.7 M.

The trade-off: with tiling a grid point's context is the window it falls in, which is not
centred on it (a point near a window edge sees up to ``W - P/2`` samples on one side and
``P/2`` on the other), as in any patch-token use of a ViT. The chain of windows of each shift is
centred on the block, and the block's halo (``W/2``) supplies real data around it.

Grid produced (exactly the ``Embedder.embed_block`` contract): grid point ``(a, b, c)`` at block
sample ``(halo0 + a*s0, halo1 + b*s1, halo2 + c*s2)``;

- ``2d``: the section at inline ``a`` (rows time, columns crossline); optional late fusion
  ``inline+crossline`` averages it with the token of the crossline section through the point
  (the paper's protocol for kNN);
- ``2.5d``: the inline view is tiled as in 2D; the crossline and two diagonal views pass through
  the centre trace of each window and give context; the grid point's vector is its token in
  the inline view;
- ``3d``: tiles of ``W^3`` blocks, the token of the ``P^3`` patch centred on the point.

Blocks whose core is a multiple of ``W`` on the tiled axes waste no tokens
(:meth:`ViTEmbedder.preferred_core`).

``tiling="coarse"`` (card key ``tiling``) trades fidelity for ``(P/g)^2`` (``(P/g)^3`` in 3D)
fewer passes: a single tiling gives tokens every ``P`` samples along the tiled axes and the
grid vectors are linearly interpolated between the two bracketing tokens per axis. Exact is the
default.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SeisfmError
from ..progress import step
from .base import Embedder, ModelCard, grid_points
from .tokenizers import view_steps
from .vit import ViTEncoder


def pick_device(device: str = "auto") -> torch.device:
    """ "auto" = cuda, then mps, then cpu."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SeisfmError(f"device {device!r}: not a torch device (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SeisfmError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SeisfmError(f"device {device!r}: MPS is not available on this machine")
    return dev


def pick_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for plain float32. "auto": bf16 (fp16 without bf16) on GPU, fp32 on CPU."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else None
    table = {
        "fp32": None,
        "float32": None,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    if precision not in table:
        raise SeisfmError(f"precision {precision!r}: use auto, fp32, bf16 or fp16")
    return table[precision]


@dataclass
class AxisTiling:
    """Windows along one tiled axis for one patch shift, and where each grid point's token is."""

    starts: np.ndarray  # window start (block sample) per window
    grid: np.ndarray  # grid indices covered by this shift
    window: np.ndarray  # window number of each of those grid points
    token: np.ndarray  # token position inside that window


def plan_axis(n_grid: int, stride: int, first: int, patch: int, window: int) -> list[AxisTiling]:
    """Shifted tilings of one axis: grid point ``k`` sits at ``first + k*stride`` and takes the
    token of the patch starting at ``first + k*stride - patch//2``."""
    per_window = window // patch
    g = math.gcd(stride, patch)
    q0 = first - patch // 2
    ks = np.arange(n_grid)
    plans = []
    for shift in range(0, patch, g):
        sel = ks[(ks * stride) % patch == shift]
        if sel.size == 0:
            continue
        j = (sel * stride - shift) // patch  # patch number in this shift's chain
        n_patches = int(j.max()) + 1
        n_windows = -(-n_patches // per_window)
        lead = (n_windows * per_window - n_patches) // 2  # centre the chain on the block
        jj = j + lead
        chain = q0 + shift - lead * patch
        plans.append(AxisTiling(chain + window * np.arange(n_windows), sel, jj // per_window, jj % per_window))
    return plans


class ViTEmbedder(Embedder):
    """A ViT encoder (2D, 2.5D or 3D tokenization) producing grid embeddings by shifted tiling."""

    def __init__(
        self,
        card: ModelCard,
        encoder: ViTEncoder,
        *,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int | None = None,
        sha256: str | None = None,
        spacing: tuple[float, float] | None = None,
        fusion: str | None = None,
        tiling: str | None = None,
    ):
        self.card = card
        cfg = encoder.cfg
        if card.dim != cfg.dim:
            raise SeisfmError(f"model card {card.id}: dim {card.dim} but the architecture is {cfg.dim} wide")
        self.kind = cfg.tokenization
        self.window, self.patch = cfg.window, cfg.patch
        self.fusion = fusion or str(card.extra.get("fusion", "inline"))
        if self.fusion not in ("inline", "inline+crossline") or (self.kind != "2d" and self.fusion != "inline"):
            raise SeisfmError(f"model card {card.id}: fusion {self.fusion!r} not supported for {self.kind}")
        self.tiling = tiling or str(card.extra.get("tiling", "exact"))
        if self.tiling not in ("exact", "coarse"):
            raise SeisfmError(f"tiling {self.tiling!r}: use exact or coarse")
        self.device = pick_device(device)
        self.amp_dtype = pick_dtype(precision, self.device)
        self.encoder = encoder.to(self.device).eval()
        self._sha = sha256
        self.spacing = spacing
        budget = 48_000 if self.device.type == "cuda" else 4_000  # tokens per forward pass
        self.batch_size = int(batch_size) if batch_size else max(1, budget // encoder.n_tokens)
        if self.batch_size < 1:
            raise SeisfmError(f"batch size {batch_size}: must be at least 1")

    # -- Embedder interface -------------------------------------------------------------
    @property
    def halo(self) -> tuple[int, int, int]:
        h = self.window // 2
        if self.kind == "2d" and self.fusion == "inline":
            return (0, h, h)
        return (h, h, h)

    def preferred_core(self) -> tuple[int, int, int]:
        """Block core (samples per axis) that uses every token of every window."""
        w = self.window
        return (w, w, w) if self.kind == "3d" else (16, w, w) if self.halo[0] == 0 else (w, w, w)

    def checkpoint_sha256(self) -> str | None:
        return self._sha

    def _one_section(self) -> ViTEmbedder:
        """Self, or for a 2d model fusing inline and crossline sections a copy (same encoder) that
        embeds the inline section only: a lone section has no crossline section to fuse."""
        if self.kind != "2d" or self.fusion == "inline":
            return self
        inline = copy.copy(self)
        inline.fusion = "inline"
        return inline

    def check_sections(self) -> None:
        Embedder.check_sections(self._one_section())

    def embed_sections(self, sections: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
        return Embedder.embed_sections(self._one_section(), sections, stride)

    # A 2-D line (one inline or crossline) comes without a halo along its missing axis: windows are
    # edge-padded (replicate) there, which is exactly what mirroring the one line gave, so the
    # vectors are the same and the block is not 2 * halo + 1 copies of the line.
    native_sections = True

    def embed_block(self, block: np.ndarray, stride: tuple[int, int, int]) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 3:
            raise SeisfmError(f"embed_block: expected a 3-D block, got shape {block.shape}")
        stride = tuple(int(s) for s in stride)
        halo = tuple(0 if k < 2 and block.shape[k] == 1 else h for k, h in enumerate(self.halo))
        core = [block.shape[k] - 2 * halo[k] for k in range(3)]
        if min(core) <= 0 or min(stride) <= 0:
            raise SeisfmError(f"embed_block: block {block.shape} too small for halo {halo} / stride {stride}")
        n = tuple(grid_points(core[k], stride[k]) for k in range(3))
        vol = torch.from_numpy(np.ascontiguousarray(block)).to(self.device)
        with torch.inference_mode():
            out = self._embed(vol, n, stride, halo, tiled=(0, 1, 2) if self.kind == "3d" else (1, 2))
            if self.fusion == "inline+crossline":
                sw, nw, hw = ((x[1], x[0], x[2]) for x in (stride, n, halo))
                other = self._embed(vol.transpose(0, 1), nw, sw, hw, tiled=(1, 2))
                out = (out + other.transpose(0, 1)) * 0.5
        return out.float().cpu().numpy()

    def _embed(self, vol, n, stride, halo, tiled):
        """Exact: tokens centred on every grid point. Coarse: one tiling (tokens every ``P``
        samples along the tiled axes), linearly interpolated onto the grid."""
        run = self._embed_3d if self.kind == "3d" else self._embed_sections
        if self.tiling == "exact":
            return run(vol, n, stride, halo)
        p = self.patch
        nc = list(n)
        for k in tiled:
            nc[k] = (n[k] - 1) * stride[k] // p + 2  # coarse points bracketing every grid point
        sc = tuple(p if k in tiled else stride[k] for k in range(3))
        out = run(vol, tuple(nc), sc, halo)
        for k in tiled:
            c = torch.arange(n[k], device=out.device, dtype=torch.float32) * (stride[k] / p)
            i0 = c.floor().long()
            w = (c - i0).reshape([-1 if j == k else 1 for j in range(out.ndim)])
            out = out.index_select(k, i0) * (1 - w) + out.index_select(k, i0 + 1) * w
        return out

    # -- tiling -------------------------------------------------------------------------
    def _plans(self, n, stride, halo, axes):
        return [plan_axis(n[k], stride[k], halo[k], self.patch, self.window) for k in axes]

    def _embed_sections(self, vol, n, stride, halo):
        """2D / 2.5D: sections at every grid inline, tiled in (crossline, time)."""
        w, t = self.window, self.window // self.patch
        plans = self._plans(n, stride, halo, (1, 2))
        lo = [min(int(p.starts.min()) for p in pl) for pl in plans]
        hi = [max(int(p.starts.max()) + w for p in pl) for pl in plans]
        pad = [max(0, -lo[0]), max(0, hi[0] - vol.shape[1]), max(0, -lo[1]), max(0, hi[1] - vol.shape[2])]
        out = torch.zeros(n + (self.dim,), device=vol.device)
        jobs = []  # (section a, window start b, window start c, (plan_b, window_b), (plan_c, window_c))
        for a in range(n[0]):
            for pb, pc in itertools.product(plans[0], plans[1]):
                for wb, wc in itertools.product(range(len(pb.starts)), range(len(pc.starts))):
                    jobs.append((a, int(pb.starts[wb]), int(pc.starts[wc]), pb, wb, pc, wc))
        if self.kind == "2d":
            # pad (crossline, time) once so every window is inside; edge values, like the cube border
            padded = F.pad(vol[None, None], (pad[2], pad[3], pad[0], pad[1], 0, 0), mode="replicate")[0, 0]
            ia = halo[0] + np.arange(n[0]) * stride[0]

            def windows(batch):
                return torch.stack(
                    [padded[ia[a], b + pad[0] : b + pad[0] + w, c + pad[2] : c + pad[2] + w].T for a, b, c, *_ in batch]
                )
        else:
            steps = torch.as_tensor(view_steps(self.spacing), dtype=torch.float32, device=vol.device)
            ia = halo[0] + np.arange(n[0]) * stride[0]

            def windows(batch):
                centre = torch.tensor([[ia[a], b + w // 2, c] for a, b, c, *_ in batch], device=vol.device)
                return sample_views(vol, centre, steps, w)

        def scatter(batch, tokens):
            # the inline view's tokens (the first t*t of a 2.5D sequence), in (trace, time) order
            tokens = tokens[:, : t * t].reshape(len(batch), t, t, -1).transpose(1, 2)
            for (a, _b, _c, pb, wb, pc, wc), tok in zip(batch, tokens):
                mb, mc = pb.window == wb, pc.window == wc
                gb, gc = torch.as_tensor(pb.grid[mb]), torch.as_tensor(pc.grid[mc])
                tb, tc = torch.as_tensor(pb.token[mb]), torch.as_tensor(pc.token[mc])
                out[a][gb[:, None], gc[None, :]] = tok[tb[:, None], tc[None, :]].float()

        self._run(jobs, windows, scatter, n_tokens_used=t * t)
        return out

    def _embed_3d(self, vol, n, stride, halo):
        w, t = self.window, self.window // self.patch
        plans = self._plans(n, stride, halo, (0, 1, 2))
        pad = []
        for k, pl in enumerate(plans):
            lo = min(int(p.starts.min()) for p in pl)
            hi = max(int(p.starts.max()) + w for p in pl)
            pad.append((max(0, -lo), max(0, hi - vol.shape[k])))
        padded = F.pad(vol[None, None], (*pad[2], *pad[1], *pad[0]), mode="replicate")[0, 0]
        out = torch.zeros(n + (self.dim,), device=vol.device)
        jobs = []
        for p0, p1, p2 in itertools.product(*plans):
            for w0, w1, w2 in itertools.product(*(range(len(p.starts)) for p in (p0, p1, p2))):
                jobs.append(((p0, w0), (p1, w1), (p2, w2)))

        def windows(batch):
            crops = []
            for job in batch:
                s = [int(p.starts[wi]) + pad[k][0] for k, (p, wi) in enumerate(job)]
                crops.append(padded[s[0] : s[0] + w, s[1] : s[1] + w, s[2] : s[2] + w])
            return torch.stack(crops)

        def scatter(batch, tokens):
            tokens = tokens.reshape(len(batch), t, t, t, -1)
            for job, tok in zip(batch, tokens):
                sel = [p.window == wi for p, wi in job]
                g = [torch.as_tensor(p.grid[m]) for (p, _), m in zip(job, sel)]
                tk = [torch.as_tensor(p.token[m]) for (p, _), m in zip(job, sel)]
                out[g[0][:, None, None], g[1][None, :, None], g[2][None, None, :]] = tok[
                    tk[0][:, None, None], tk[1][None, :, None], tk[2][None, None, :]
                ].float()

        self._run(jobs, windows, scatter, n_tokens_used=t**3)
        return out

    # -- batched forward passes with out-of-memory back-off -----------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.amp_dtype is None:
            return self.encoder.patch_tokens(x)
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype):
            return self.encoder.patch_tokens(x)

    def _run(self, jobs, windows, scatter, n_tokens_used):
        i = 0
        while i < len(jobs):
            batch = jobs[i : i + self.batch_size]
            try:
                tokens = self._forward(windows(batch))
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise SeisfmError(f"{self.card.id}: out of device memory even at batch size 1 on {self.device}") from None
                self.batch_size = max(1, self.batch_size // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            scatter(batch, tokens)
            i += len(batch)
            step(i, len(jobs))  # progress within the block; may raise SeisfmCancelled


def sample_views(vol: torch.Tensor, centre: torch.Tensor, steps: torch.Tensor, window: int) -> torch.Tensor:
    """The 2.5D input: ``(B, V, W_time, W_trace)`` views through trace ``centre[:, :2]``,
    time window starting at ``centre[:, 2]``.

    View ``v`` samples the traces ``centre + u * steps[v]`` for ``u = -W/2 .. W/2 - 1``, with
    bilinear interpolation between traces when a step is fractional (unequal trace spacing)
    and edge values outside the block.
    """
    u = torch.arange(window, device=vol.device, dtype=torch.float32) - window // 2
    pos = centre[:, None, None, :2].float() + u[None, None, :, None] * steps[None, :, None, :]  # (B,V,W,2)
    t = centre[:, 2:3].long() + torch.arange(window, device=vol.device)[None]  # (B, W)
    t = t.clamp(0, vol.shape[2] - 1)[:, None, None, :]
    lo = pos.floor()
    frac = pos - lo
    lo = lo.long()
    out = 0
    for di, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        wgt = (frac[..., 0] if di else 1 - frac[..., 0]) * (frac[..., 1] if dx else 1 - frac[..., 1])
        if not di and not dx or bool((wgt > 0).any()):
            i = (lo[..., 0] + di).clamp(0, vol.shape[0] - 1)
            x = (lo[..., 1] + dx).clamp(0, vol.shape[1] - 1)
            out = out + wgt[..., None] * vol[i[..., None], x[..., None], t]
    return out.transpose(2, 3).contiguous()  # (B, V, time, trace)
