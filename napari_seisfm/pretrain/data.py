"""Training windows for MAE pretraining, drawn from the user's cubes and image sets.

Every source is standardised the way extraction standardises it (the NCS recipe: unit variance
from a sample of live traces, clipped at 3 std; images one by one), so a model sees in training
what ``seisfm embed`` will give it. Cubes too big to hold are read as random sub-volumes, a new
one every :data:`REFRESH` steps.

Randomness is a function of ``(seed, rank, step)`` only (:func:`step_generator`), never of a
generator carried from step to step: a resumed run draws exactly the windows and masks the
uninterrupted run would have drawn, and each DDP rank draws its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SeisfmError

REFRESH = 50  # steps between sub-volume reads of a cube too big to hold
HOLD_BYTES = 1 << 30  # a standardised cube up to 1 GiB is held whole
BLOCK = 192  # trace-axis size of a sub-volume read from a bigger cube


def step_generator(seed: int, rank: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one (run, rank, step, purpose): resume needs no RNG state."""
    return torch.Generator().manual_seed((seed * 1_000_003 + rank * 7_919 + step * 31 + stream) % (2**63))


@dataclass
class Source:
    """One cube (or stack of images) the windows come from."""

    name: str
    kind: str  # "cube" | "images"
    shape: tuple[int, ...]  # cube (il, xl, t); images (n, trace, t)
    weight: float = 1.0
    array: np.ndarray | None = None  # standardised, when held whole
    cube: object = None  # the lazy Cube, when read in sub-volumes
    normalisation: dict | None = None

    def block(self, gen: torch.Generator) -> np.ndarray:
        """A standardised ``(il, xl, t)`` volume to draw windows from (images: ``(n, trace, t)``)."""
        if self.array is not None:
            return self.array
        ni, nx, _ = self.shape
        bi, bx = min(ni, BLOCK), min(nx, BLOCK)
        i0 = int(torch.randint(0, ni - bi + 1, (1,), generator=gen))
        x0 = int(torch.randint(0, nx - bx + 1, (1,), generator=gen))
        raw = np.asarray(self.cube[i0 : i0 + bi, x0 : x0 + bx, :], np.float32)
        return _standardise(raw, self.normalisation)


def _standardise(raw: np.ndarray, norm: dict) -> np.ndarray:
    out = np.clip((raw - norm["mean"]) / norm["std"], -norm["clip"], norm["clip"])
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def open_cube_source(path, weight: float = 1.0) -> Source:
    """A cube file (SEG-Y, .sgz, .npy) as a training source; small cubes are read whole."""
    from ..extract import estimate_normalisation
    from ..io import open_cube

    cube = open_cube(path)
    norm = estimate_normalisation(cube)
    src = Source(Path(path).name, "cube", tuple(cube.shape), weight, cube=cube, normalisation=norm)
    if int(np.prod(cube.shape)) * 4 <= HOLD_BYTES:
        src.array = _standardise(np.asarray(cube[:, :, :], np.float32), norm)
    return src


def array_source(name: str, cube: np.ndarray, weight: float = 1.0) -> Source:
    """An in-memory cube (e.g. a synthetic survey), standardised over all its samples."""
    v = np.asarray(cube, np.float32)
    if v.ndim != 3:
        raise SeisfmError(f"{name}: a training cube must be 3-D (inline, crossline, sample), got shape {v.shape}")
    finite = v[np.isfinite(v)]
    std = float(finite.std()) if finite.size else 0.0
    if not std > 0:
        raise SeisfmError(f"{name}: no signal to train on (constant, empty or non-finite)")
    norm = {"mean": float(finite.mean()), "std": std, "clip": 3.0}
    return Source(name, "cube", v.shape, weight, array=_standardise(v, norm), normalisation=norm)


def images_source(path, weight: float = 1.0) -> Source:
    """An image set (.npz, as ``seisfm bench --images`` reads it), each image standardised."""
    from ..images import load_image_set, standardise

    images = load_image_set(path).images
    stack = np.stack([standardise(im) for im in images])
    return Source(Path(path).name, "images", stack.shape, weight, array=stack)


def check_fits(src: Source, tokenization: str, window: int) -> None:
    """One clear line when a source cannot give a single window of this model."""
    if src.kind == "images":
        if tokenization == "3d":
            raise SeisfmError(f"{src.name}: 2-D images cannot train a 3d model; give cubes, or use --tokenization 2d/2.5d")
        sizes = {"trace": src.shape[1], "sample": src.shape[2]}
    elif tokenization == "3d":
        sizes = dict(zip(("inline", "crossline", "sample"), src.shape))
    elif tokenization == "2d":
        sizes = {"inline or crossline": max(src.shape[:2]), "sample": src.shape[2]}
    else:  # 2.5d: views through a trace; trace axes are clamped at the edges, time is not
        sizes = {"sample": src.shape[2]}
    short = {k: n for k, n in sizes.items() if n < window}
    if short:
        what = ", ".join(f"{n} along {k}" for k, n in short.items())
        raise SeisfmError(f"{src.name}: too small for the model's {window}-sample window ({what})")


class WindowSampler:
    """Batches of training windows, each batch from one source chosen by weight."""

    def __init__(self, sources: list[Source], tokenization: str, window: int, seed: int = 0, rank: int = 0):
        if not sources:
            raise SeisfmError("nothing to train on: give at least one cube or image set")
        for s in sources:
            check_fits(s, tokenization, window)
            if not s.weight >= 0:
                raise SeisfmError(f"{s.name}: sampling weight must be >= 0, got {s.weight}")
        w = np.array([s.weight for s in sources], np.float64)
        if w.sum() <= 0:
            raise SeisfmError("every sampling weight is 0: nothing to train on")
        self.sources, self.kind, self.window = sources, tokenization, window
        self.seed, self.rank = seed, rank
        self.cumulative = torch.tensor(np.cumsum(w / w.sum()))
        self._blocks: dict[tuple[int, int], torch.Tensor] = {}

    def batch(self, step: int, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The training windows of ``step`` (same step, same windows)."""
        gen = step_generator(self.seed, self.rank, step)
        k = int(
            torch.searchsorted(self.cumulative, torch.rand(1, generator=gen, dtype=torch.float64)).clamp(
                max=len(self.sources) - 1
            )
        )
        vol = self._volume(k, step)
        return random_windows(vol, self.sources[k].kind, self.kind, self.window, batch, gen).to(device)

    def _volume(self, k: int, step: int) -> torch.Tensor:
        src = self.sources[k]
        key = (k, 0 if src.array is not None else step // REFRESH)
        if key not in self._blocks:
            self._blocks = {kk: v for kk, v in self._blocks.items() if kk[0] != k}  # one block per source
            gen = step_generator(self.seed, self.rank, key[1] * REFRESH, stream=1 + k)
            self._blocks[key] = torch.from_numpy(src.block(gen))
        return self._blocks[key]


def random_windows(
    vol: torch.Tensor, source_kind: str, tokenization: str, window: int, batch: int, gen: torch.Generator
) -> torch.Tensor:
    """``batch`` random model inputs from one standardised volume (images: a stack of sections)."""
    from ..encoders.tokenizers import view_steps
    from ..encoders.vit_embedder import sample_views

    w = window

    def pick(hi: int, n: int = batch) -> torch.Tensor:
        return torch.randint(0, max(1, hi), (n,), generator=gen)

    if source_kind == "images":
        img = pick(vol.shape[0])
        if tokenization == "2d":
            x0, t0 = pick(vol.shape[1] - w + 1), pick(vol.shape[2] - w + 1)
            return torch.stack([vol[i, a : a + w, b : b + w].T for i, a, b in zip(img.tolist(), x0.tolist(), t0.tolist())])
        centre = torch.stack([torch.zeros(batch, dtype=torch.long), pick(vol.shape[1]), pick(vol.shape[2] - w + 1)], 1)
        steps = torch.as_tensor(view_steps(), dtype=torch.float32)
        return torch.cat([sample_views(vol[i : i + 1], centre[j : j + 1], steps, w) for j, i in enumerate(img.tolist())])
    ni, nx, nt = vol.shape
    if tokenization == "3d":
        a, b, c = pick(ni - w + 1), pick(nx - w + 1), pick(nt - w + 1)
        return torch.stack([vol[i : i + w, x : x + w, t : t + w] for i, x, t in zip(a.tolist(), b.tolist(), c.tolist())])
    if tokenization == "2d":  # inline or crossline sections (rows time), whichever is long enough
        axes = [ax for ax, n in ((0, nx), (1, ni)) if n >= w]
        axis = torch.tensor(axes)[pick(len(axes))].tolist()
        out = []
        for ax, r, t0 in zip(axis, torch.rand(batch, generator=gen).tolist(), pick(nt - w + 1).tolist()):
            line_n, along = (ni, nx) if ax == 0 else (nx, ni)
            line, x0 = int(r * line_n), int(torch.randint(0, along - w + 1, (1,), generator=gen))
            sec = vol[line] if ax == 0 else vol[:, line]
            out.append(sec[x0 : x0 + w, t0 : t0 + w].T)
        return torch.stack(out)
    centre = torch.stack([pick(ni), pick(nx), pick(nt - w + 1)], 1)
    steps = torch.as_tensor(view_steps(), dtype=torch.float32)
    return sample_views(vol, centre, steps, w)
