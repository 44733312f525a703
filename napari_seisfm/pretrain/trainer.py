"""The MAE pretraining loop: the NCS-models recipe, resumable to the bit, headless.

Recipe (He et al. 2022, as the NCS-models paper uses it): 85 % of the joint patch sequence
masked, normalised-pixel loss on the masked patches, AdamW (betas 0.9/0.95, weight decay 0.05),
learning rate ``base_lr x batch / 256`` (see :data:`SHORT_RUN_LR`) with a linear warm-up over the first 5 % of the steps
and a cosine decay to zero, bf16 autocast and SDPA attention on a GPU.

A run lives in its output folder. ``checkpoint.pt`` (model, optimiser, step, schedule length,
loss history) is replaced atomically every ``checkpoint_every`` steps and when the run is
cancelled or interrupted; the data and the masks of step ``n`` depend only on the seed and
``n`` (``data.step_generator``), so a resumed run ends with the weights an uninterrupted one
would have. The model itself (safetensors + card) is written only when the last step is done:
a folder without a card holds a run, never a model.

Several GPUs: launch with ``torchrun --nproc_per_node N -m napari_seisfm.cli pretrain ...``;
each rank draws its own windows, gradients are averaged by DistributedDataParallel, rank 0
writes.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import SeisfmCancelled, SeisfmError
from ..io.output import atomic_output
from . import CHECKPOINT, MINUTES_PROBE
from .data import WindowSampler, step_generator

# The MAE recipe's rate suits its batches of 1024-4096; at the batch of 32 a CPU affords it gives 1.9e-5
# and a short run barely moves (bench dev seed 0, micro model, 45 s: loss 1.91 -> 0.99 at base 1.5e-4,
# 1.21 -> 0.92 at 3e-3; linear read-out flat spot 0.69 vs 0.90, 8 classes 0.29 vs 0.32). So by default
# the rate is never below 3e-3 x 32 / 256; an explicit --base-lr is taken as given.
MAE_BASE_LR = 1.5e-4
SHORT_RUN_LR = 3e-3 * 32 / 256
FORMAT = "seisfm-pretrain-1"
# Schedule length assumed while those steps are timed: long, so that their learning rates stay
# below the real warm-up's (a short guess peaked during the probe and then dropped back).
PROBE_TOTAL = 1_000_000


@dataclass
class PretrainSettings:
    """Everything that defines a run (stored in the checkpoint and the model card)."""

    name: str = "my-model"
    tokenization: str = "2.5d"
    size: str = "test"
    steps: int | None = None  # total optimiser steps, or
    minutes: float | None = None  # a wall-clock budget turned into steps after a short probe
    batch_size: int = 32
    base_lr: float | None = None  # x batch / 256; None: the MAE recipe's 1.5e-4, floored at SHORT_RUN_LR
    warmup: float = 0.05  # fraction of the steps
    weight_decay: float = 0.05
    mask_ratio: float = 0.85
    seed: int = 0
    checkpoint_every: int = 200
    val_every: int = 100
    val_batches: int = 4
    architecture: dict = field(default_factory=dict)  # ViTConfig overrides (window, patch, ...)

    @property
    def lr(self) -> float:
        if self.base_lr is None:
            return max(MAE_BASE_LR * self.batch_size / 256, SHORT_RUN_LR)
        return self.base_lr * self.batch_size / 256

    def check(self) -> None:
        if self.steps is None and self.minutes is None:
            raise SeisfmError("give --steps N or --minutes M")
        if self.steps is not None and self.steps < 1:
            raise SeisfmError(f"--steps {self.steps}: must be at least 1")
        if self.minutes is not None and not self.minutes > 0:
            raise SeisfmError(f"--minutes {self.minutes}: must be positive")
        if self.batch_size < 1:
            raise SeisfmError(f"--batch-size {self.batch_size}: must be at least 1")
        if not 0 <= self.mask_ratio < 1:
            raise SeisfmError(f"--mask-ratio {self.mask_ratio}: must be in [0, 1)")
        if self.base_lr is not None and not self.base_lr > 0:
            raise SeisfmError(f"--base-lr {self.base_lr}: must be positive")


def learning_rate(settings: PretrainSettings, step: int, total: int) -> float:
    """Linear warm-up, then cosine to zero (per optimiser step, so resume needs no state)."""
    warm = max(1, math.ceil(settings.warmup * total))
    if step < warm:
        return settings.lr * (step + 1) / warm
    frac = (step - warm) / max(1, total - warm)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


@dataclass
class History:
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


@dataclass
class Progress:
    """What a progress bar shows after each step."""

    step: int
    total: int
    loss: float
    lr: float
    samples_per_s: float
    val_loss: float | None = None


def build_mae(settings: PretrainSettings):
    """The run's MAE with initial weights drawn from ``settings.seed`` (the same seed, the same
    start: two runs of one command agree; the caller's global RNG is left as it was)."""
    from ..encoders.vit import MaskedAutoencoder, config

    try:
        cfg = config(settings.size, tokenization=settings.tokenization, mask_ratio=settings.mask_ratio, **settings.architecture)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            return MaskedAutoencoder(cfg)
    except (TypeError, ValueError) as exc:
        raise SeisfmError(f"model: {exc}") from None


def load_init(mae, path) -> str:
    """Start from existing weights: a full MAE (ours) or any encoder checkpoint ``embed`` reads."""
    from ..encoders.checkpoint import load_encoder, read_state_dict

    sd = read_state_dict(path)
    if any(k.startswith("decoder_") or ".decoder_" in k for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        ours = mae.state_dict()
        bad = [k for k in ours if k not in sd or sd[k].shape != ours[k].shape]
        if bad or set(sd) - set(ours):
            extra = sorted(set(sd) - set(ours))
            raise SeisfmError(
                f"{path}: --init checkpoint does not match this model ({len(bad)} missing or of another shape, "
                f"e.g. {', '.join(bad[:3]) or '-'}; {len(extra)} unexpected): check --size and --tokenization"
            )
        mae.load_state_dict(sd)
        return "encoder and decoder"
    load_encoder(mae.encoder, path, what="this model's encoder (check --size and --tokenization)")
    return "encoder (decoder fresh)"


class Pretrainer:
    """One pretraining run in ``out_dir``: call :meth:`run`."""

    def __init__(
        self,
        settings: PretrainSettings,
        sampler: WindowSampler,
        out_dir,
        *,
        device="auto",
        val_sampler: WindowSampler | None = None,
        init=None,
        resume: bool = False,
        sources: list[str] | None = None,
    ):
        from ..encoders.vit_embedder import pick_device

        settings.check()
        self.settings, self.sampler, self.val_sampler = settings, sampler, val_sampler
        self.out = Path(out_dir)
        self.device = pick_device(device)
        self.rank, self.world = _dist_rank_world(self.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.sources = list(sources or [s.name for s in sampler.sources])
        self.mae = build_mae(settings).to(self.device)
        self.init_note = f"{Path(init).expanduser().resolve()} ({load_init(self.mae, init)})" if init else ""
        self.opt = torch.optim.AdamW(self.mae.parameters(), lr=settings.lr, betas=(0.9, 0.95), weight_decay=settings.weight_decay)
        self.step, self.total, self.elapsed = 0, settings.steps, 0.0
        self.history = History()
        self._updating = False  # between the optimiser step and the step count: no checkpoint then
        if resume:
            self._load_checkpoint()
        self.model = self.mae
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.mae, device_ids=ids)
        self.amp = torch.bfloat16 if self.device.type == "cuda" else None

    # -- checkpoints ---------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        state = {
            "format": FORMAT,
            "settings": asdict(self.settings),
            "sources": self.sources,
            "weights": [src.weight for src in self.sampler.sources],
            "step": self.step,
            "total": self.total,
            "elapsed": self.elapsed,
            "history": asdict(self.history),
            "init": self.init_note,
            "model": self.mae.state_dict(),
            "optimizer": self.opt.state_dict(),
        }
        try:
            with atomic_output(self.checkpoint_path, failed=lambda path, exc: exc) as tmp:
                torch.save(state, tmp)
        except (OSError, RuntimeError) as exc:
            raise SeisfmError(
                f"{self.checkpoint_path}: could not write the checkpoint ({exc}); the previous checkpoint, if any, is intact"
            ) from None

    def _load_checkpoint(self) -> None:
        state = read_checkpoint(self.out)
        if state["settings"] != asdict(self.settings):
            diff = [k for k, v in state["settings"].items() if asdict(self.settings).get(k) != v]
            raise SeisfmError(
                f"{self.checkpoint_path}: --resume with other settings ({', '.join(diff)}); "
                "resume with the run's own settings (seisfm pretrain --resume --out DIR)"
            )
        try:
            self.mae.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise SeisfmError(f"{self.checkpoint_path}: damaged checkpoint ({str(exc).splitlines()[0]})") from None
        self.step, self.total, self.elapsed = int(state["step"]), state["total"], float(state["elapsed"])
        self.history = History(**state["history"])
        self.init_note = state.get("init", "")

    # -- the loop ------------------------------------------------------------------------------
    def run(self, progress: Callable[[Progress], None] | None = None, cancel=None) -> History:
        """Train to the last step (or until ``cancel`` is set: then checkpoint and raise
        :class:`SeisfmCancelled`). Ctrl-C also leaves a checkpoint, unless it lands inside an
        optimiser update (weights partly updated): then the last periodic checkpoint stays."""
        s = self.settings
        self.mae.train()
        t_start, step_start = time.perf_counter() - self.elapsed, self.step
        last_ckpt = time.perf_counter()
        try:
            while self.total is None or self.step < self.total:
                if _is_set(cancel):
                    self.save_checkpoint()
                    raise SeisfmCancelled(
                        f"pretraining stopped at step {self.step} of {self.total}; "
                        f"resume with seisfm pretrain --resume --out {self.out}"
                    )
                loss, lr = self._train_step()
                self.elapsed = time.perf_counter() - t_start
                h = self.history
                h.step.append(self.step)
                h.loss.append(loss)
                h.lr.append(lr)
                h.elapsed.append(round(self.elapsed, 3))
                self.step += 1
                self._updating = False
                if self.total is None and self.step >= MINUTES_PROBE:
                    per_step = self.elapsed / self.step
                    self.total = max(self.step + 1, int(s.minutes * 60 / per_step))
                    if self.world > 1:  # every rank must stop at the same step
                        t = torch.tensor([self.total], device=self.device)
                        torch.distributed.broadcast(t, 0)
                        self.total = int(t)
                val = None
                if self.val_sampler is not None and (self.step % s.val_every == 0 or self.step == self.total):
                    val = self.validate()
                    h.val_step.append(self.step)
                    h.val_loss.append(val)
                if progress is not None and self.rank == 0:  # one progress bar, not one per rank
                    done = max(1, self.step - step_start)
                    rate = (
                        done
                        * s.batch_size
                        * self.world
                        / max(1e-9, self.elapsed - (h.elapsed[step_start - 1] if step_start else 0.0))
                    )
                    progress(Progress(self.step, self.total or self.step + 1, loss, lr, rate, val))
                if self.step % s.checkpoint_every == 0 or time.perf_counter() - last_ckpt > 120:
                    self.save_checkpoint()
                    last_ckpt = time.perf_counter()
        except KeyboardInterrupt:
            if not self._updating:  # else the weights are partly a step ahead: keep the last checkpoint
                self.save_checkpoint()
            raise
        self.save_checkpoint()
        return self.history

    def _train_step(self) -> tuple[float, float]:
        s = self.settings
        lr = learning_rate(s, self.step, self.total or PROBE_TOTAL)
        for g in self.opt.param_groups:
            g["lr"] = lr
        x = self.sampler.batch(self.step, s.batch_size, self.device)
        gen = step_generator(s.seed, self.rank, self.step, stream=99)
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            loss, _, _ = self.model(x, generator=gen)
        value = loss.detach().clone()
        if self.world > 1:  # before the check: every rank sees a NaN on any rank and stops together
            torch.distributed.all_reduce(value)
            value /= self.world
        if not torch.isfinite(value):
            self.save_checkpoint()
            raise SeisfmError(
                f"pretraining diverged at step {self.step} (loss {value.item()}); "
                "the last checkpoint is kept: lower --base-lr or check the input data"
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self._updating = True
        self.opt.step()
        return float(value), lr

    @torch.no_grad()
    def validate(self) -> float:
        """Loss on fixed held-out windows and masks (the same ones at every evaluation)."""
        s = self.settings
        self.mae.eval()
        losses = []
        for k in range(s.val_batches):
            x = self.val_sampler.batch(10_000_000 + k, s.batch_size, self.device)
            gen = step_generator(s.seed, 0, 10_000_000 + k, stream=98)
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                losses.append(float(self.mae(x, generator=gen)[0]))
        self.mae.train()
        return float(np.mean(losses))


def read_checkpoint(out_dir) -> dict:
    """A run's checkpoint (``weights_only``: tensors and containers, never code)."""
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        raise SeisfmError(f"{out_dir}: no run to resume (no {CHECKPOINT})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one message
        raise SeisfmError(f"{path}: damaged checkpoint ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SeisfmError(f"{path}: not a seisfm pretraining checkpoint")
    return state


def _dist_rank_world(device: torch.device) -> tuple[int, int]:
    """Rank and world size under torchrun (joining the process group), else (0, 1). The backend
    follows the training device: gloo for --device cpu even where CUDA is available."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def end_distributed(*, together: bool = True) -> None:
    """Leave the process group (torchrun runs): call once the run is over on every rank. ``together``: wait
    for every rank first (a rank that tore the group down while rank 0 still wrote the model aborted with
    "terminate called without an active exception", once in a full test run); after an error, leave at once
    (the other ranks may never arrive)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if together:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _is_set(cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())
