"""Training both stages on seismic-velocity pairs, resumable from the run folder.

The folder holds checkpoint.safetensors (weights), optimizer.pt (Adam state, read back with
weights_only=True), state.json (stage, step, losses) and, when both stages are done, the model
NAME.safetensors + NAME.toml. Batches are read from memory-mapped OpenFWI-layout files and
preprocessed on the fly, so the same loop serves OpenFWI on a GPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SeisfmError
from ..io.output import atomic_output
from .data import Setup, open_pairs, seismic_to_model, velocity_to_model
from .diffusion import DiffusionConfig
from .model import WaveDiffusion, load, save
from .vqae import VQConfig


@dataclass
class Progress:
    stage: int
    step: int
    total: int
    loss: float


def batch(seismic, velocity, idx, setup: Setup, device):
    idx = np.sort(idx)
    s = seismic_to_model(np.asarray(seismic[idx]), setup).to(device)
    v = velocity_to_model(np.asarray(velocity[idx]), setup).to(device)
    return s, v


def _read_state(path: Path) -> dict:
    """The run's state.json, checked: a damaged or edited one is one line, not a KeyError mid-run."""
    try:
        state = json.loads(path.read_text())
        ok = (
            isinstance(state, dict)
            and state.get("stage") in (1, 2, 3)
            and type(state.get("step")) is int
            and state["step"] >= 0
            and all(isinstance(state.get(k), list) for k in ("losses1", "losses2"))
            and all(type(state.get(k)) is int and state[k] >= 0 for k in ("stage1_steps", "stage2_steps"))
            and isinstance(state.get("seconds"), (int, float))
        )
    except (OSError, ValueError, RecursionError):
        ok = False
    if not ok:
        raise SeisfmError(f"{path}: damaged run state; start a new run folder")
    return state


def _load_optimizer(path: Path, opt, stage: int, device) -> None:
    """Adam's state from optimizer.pt (``weights_only``: tensors and containers, never code), checked against
    the optimiser it goes into; anything else is one line naming the file."""
    import pickle

    try:
        saved = torch.load(path, weights_only=True, map_location=device)
    except pickle.UnpicklingError as exc:
        from ..encoders.checkpoint import unpickling_refusal

        code, detail = unpickling_refusal(exc)
        what = (
            f"refused: it holds Python objects other than tensors ({detail}), never unpickled"
            if code
            else f"unreadable ({detail})"
        )
        raise SeisfmError(f"{path}: not an optimiser state: {what}; remove it to restart the optimiser") from None
    except Exception as exc:  # noqa: BLE001 - any other bytes fail the unpickler their own way
        raise SeisfmError(
            f"{path}: not an optimiser state ({exc.__class__.__name__}); remove it to restart the optimiser"
        ) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("opt"), dict):
        raise SeisfmError(f"{path}: not an optimiser state of this run; remove it to restart the optimiser")
    if saved.get("stage") != stage:
        return
    try:
        opt.load_state_dict(saved["opt"])
    except Exception as exc:  # noqa: BLE001 - wrong groups, shapes or types: torch raises several kinds
        raise SeisfmError(
            f"{path}: optimiser state does not fit this model ({exc.__class__.__name__}); remove it to restart the optimiser"
        ) from None


def train(
    data,
    out,
    setup: Setup,
    vq: VQConfig,
    diffusion: DiffusionConfig,
    *,
    stage1_steps: int | None = None,
    stage2_steps: int | None = None,
    batch_size: int = 32,
    lr1: float = 4.5e-4,
    lr2: float = 2e-4,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    name: str | None = None,
    command: str = "",
    checkpoint_every: int = 100,
    progress=None,
    stop_after_s: float | None = None,
) -> dict:
    """Train Stage 1 then Stage 2; returns the state (with `model` set once both are done).

    `stop_after_s` ends this call early with a checkpoint (the run continues with resume=True).
    Step counts default to 2000 each; on resume, given ones replace the run's totals (not below
    what a finished stage did)."""
    out = Path(out)
    data = Path(data)
    seismic, velocity = open_pairs(data / "data.npy", data / "model.npy", setup)
    n = seismic.shape[0]
    if n < 2:
        raise SeisfmError(f"{data}: {n} pair(s); training needs at least 2")
    model = WaveDiffusion(setup, vq, diffusion).to(device)
    state_path, ckpt = out / "state.json", out / "checkpoint.safetensors"
    if resume:
        if not state_path.exists():
            raise SeisfmError(f"{out}: nothing to resume (no state.json); run without --resume first")
        loaded, _ = load(ckpt, device, expect=model.config())
        model.load_state_dict(loaded.state_dict())
        state = _read_state(state_path)
        for stage, steps in ((1, stage1_steps), (2, stage2_steps)):
            if steps is None:
                continue
            done = state["step"] if state["stage"] == stage else (len(state[f"losses{stage}"]) if state["stage"] > stage else 0)
            if state["stage"] > stage and steps != done:
                raise SeisfmError(f"{out}: stage {stage} is finished after {done} steps; its step count cannot change")
            state[f"stage{stage}_steps"] = max(steps, done)
    else:
        if state_path.exists():
            raise SeisfmError(f"{out}: a run is already here; add --resume to continue it or choose another folder")
        out.mkdir(parents=True, exist_ok=True)
        state = {
            "stage": 1,
            "step": 0,
            "losses1": [],
            "losses2": [],
            "seconds": 0.0,
            "data": str(data),
            "n_pairs": n,
            "stage1_steps": 2000 if stage1_steps is None else stage1_steps,
            "stage2_steps": 2000 if stage2_steps is None else stage2_steps,
            "batch_size": batch_size,
            "seed": seed,
        }
    opt = _optimizer(model, state["stage"], lr1, lr2)
    if resume and (out / "optimizer.pt").exists():
        _load_optimizer(out / "optimizer.pt", opt, state["stage"], device)
    t_start = time.time()

    def checkpoint():
        state["seconds"] += time.time() - t_start_seg[0]
        t_start_seg[0] = time.time()
        save(model, ckpt, {"stage": state["stage"], "step": state["step"]})
        with atomic_output(out / "optimizer.pt") as tmp:
            torch.save({"stage": state["stage"], "opt": opt.state_dict()}, tmp)
        _write_state(state_path, state)

    t_start_seg = [t_start]
    rng = np.random.default_rng(seed + 7919 * (state["stage"] * 100000 + state["step"]))
    while state["stage"] <= 2:
        stage = state["stage"]
        total = state["stage1_steps"] if stage == 1 else state["stage2_steps"]
        model.train()
        while state["step"] < total:
            s, v = batch(seismic, velocity, rng.choice(n, min(batch_size, n), replace=False), setup, device)
            if stage == 1:
                loss, _ = model.vqae.loss(s, v)
            else:
                with torch.no_grad():
                    z = model.encode(s)
                loss = model.ddpm.loss(z)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            state["step"] += 1
            state[f"losses{stage}"].append(round(loss.item(), 6))
            if progress:
                progress(Progress(stage, state["step"], total, state[f"losses{stage}"][-1]))
            if state["step"] % checkpoint_every == 0 or state["step"] == total:
                checkpoint()
            if stop_after_s is not None and time.time() - t_start > stop_after_s:
                checkpoint()
                return state
        if stage == 1:
            _set_latent_scale(model, seismic, velocity, setup, device)
        state["stage"], state["step"] = stage + 1, 0
        opt = _optimizer(model, state["stage"], lr1, lr2)
        checkpoint()
    model.eval()
    name = name or out.name
    extra = {
        "name": name,
        "command": command,
        "device": device,
        "data": state["data"],
        "n_pairs": state["n_pairs"],
        "stage1_steps": state["stage1_steps"],
        "stage2_steps": state["stage2_steps"],
        "batch_size": state["batch_size"],
        "minutes": round(state["seconds"] / 60, 2),
        "stage1_loss_last_50": float(np.mean(state["losses1"][-50:])) if state["losses1"] else 0.0,
        "stage2_loss_last_50": float(np.mean(state["losses2"][-50:])) if state["losses2"] else 0.0,
    }
    state["model"] = str(save(model, out / name, extra))
    _write_state(state_path, state)
    return state


def _write_state(path: Path, state: dict) -> None:
    """The resumable run's state (steps, losses, timings), replaced whole: a kill mid-write keeps the last one."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(state))


def _optimizer(model: WaveDiffusion, stage: int, lr1: float, lr2: float):
    params = model.vqae.parameters() if stage == 1 else model.ddpm.parameters()
    return torch.optim.Adam(params, lr=lr1 if stage == 1 else lr2, betas=(0.9, 0.999))


@torch.no_grad()
def _set_latent_scale(model, seismic, velocity, setup, device, limit: int = 512):
    """Standardise the diffusion space with the training latents' mean and std (one scalar each)."""
    model.eval()
    n = min(limit, seismic.shape[0])
    zs = [model.vqae.encode(batch(seismic, velocity, np.arange(i, min(i + 64, n)), setup, device)[0]) for i in range(0, n, 64)]
    z = torch.cat(zs)
    model.z_mean.fill_(float(z.mean()))
    model.z_std.fill_(float(z.std()))
