"""What a finished pretraining run leaves: the model (safetensors + card), loss curves and a
picture of masked inputs and their reconstructions.

The weights file holds the whole MAE (``encoder.*`` and the decoder), so the codec study can
reconstruct with it; ``embed`` reads the encoder part. The card is written last and atomically:
a folder whose card exists holds a finished model.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..errors import SeisfmError
from ..io.output import atomic_output
from .trainer import History, PretrainSettings, step_generator

CARD_SUFFIX = ".toml"


def card_path(out_dir, name: str) -> Path:
    return Path(out_dir) / f"{name}{CARD_SUFFIX}"


def write_model(
    out_dir,
    mae,
    settings: PretrainSettings,
    history: History,
    sources: list[str],
    *,
    device: str,
    sampler=None,
    command: str = "",
    init: str = "",
) -> Path:
    """Write weights, curves, pictures, then the card; returns the card's path."""
    from safetensors.torch import save_file

    from ..encoders.checkpoint import sha256_file

    out = Path(out_dir)
    name = settings.name
    weights = out / f"{name}.safetensors"
    cfg = mae.cfg
    meta = {
        "format": "seisfm-mae-1",
        "tokenization": cfg.tokenization,
        "size": settings.size,
        "steps": str(len(history.loss)),
        "mask_ratio": str(cfg.mask_ratio),
    }

    def failed(path, exc):
        return SeisfmError(
            f"{out}: could not write the model ({exc}); the run's checkpoint is kept, "
            "free space and write it again with seisfm pretrain --resume"
        )

    with atomic_output(weights, failed=failed) as tmp:
        save_file({k: v.detach().float().cpu().contiguous() for k, v in mae.state_dict().items()}, str(tmp), metadata=meta)
        os.chmod(tmp, os.stat(out).st_mode & 0o666)  # safetensors writes 0600: readable as the folder is
    try:
        write_losses_csv(out / "losses.csv", history)
        plot_losses(out / "losses.png", history, name)
        if sampler is not None:
            plot_reconstructions(out / "reconstructions.png", mae, sampler, settings)
        card = card_path(out, name)
        text = card_text(settings, mae, history, sources, weights.name, sha256_file(weights), device, command, init)
    except OSError as exc:
        raise failed(out, exc) from None
    with atomic_output(card, failed=failed) as tmp_card:
        tmp_card.write_text(text, encoding="utf-8")
    return card


def card_text(
    settings: PretrainSettings,
    mae,
    history: History,
    sources: list[str],
    weights: str,
    sha256: str,
    device: str,
    command: str,
    init: str = "",
) -> str:
    cfg = mae.cfg
    nd = 3 if cfg.tokenization == "3d" else 2
    first = float(np.mean(history.loss[:50])) if history.loss else float("nan")
    last = float(np.mean(history.loss[-50:])) if history.loss else float("nan")
    minutes = history.elapsed[-1] / 60 if history.elapsed else 0.0
    data = ", ".join(sources)
    source = (
        f"Pretrained with seisfm pretrain (MAE, {cfg.mask_ratio:.0%} masking) on {data}: "
        f"{len(history.loss)} steps of batch {settings.batch_size}, {minutes:.1f} min on {device}. "
        f"Normalised-pixel loss {first:.3f} (first 50 steps) -> {last:.3f} (last 50); predicting zeros scores 1.0."
    )
    lines = [
        "# Written by seisfm pretrain; the weights hold the encoder and the MAE decoder.",
        f"id = {_q(settings.name)}",
        f"name = {_q(f'{settings.name} ({cfg.tokenization} MAE pretrained on {data})')}",
        f"tokenization = {_q(cfg.tokenization)}",
        f"dim = {cfg.dim}",
        f"patch = {[cfg.patch] * nd}",
        f"window = {[cfg.window] * nd}",
        f"checkpoint = {_q(weights)}",
        f"sha256 = {_q(sha256)}",
        f"source = {_q(source)}",
        'citation = "MAE recipe: He et al., Masked Autoencoders Are Scalable Vision Learners, CVPR 2022; NCS-models."',
        'licence = "as the data it was trained on"',
        'normalisation = "unit-variance, clip 3 std"',
        "",
        "[architecture]",
        f"size = {_q(settings.size)}",
        *(f"{k} = {_toml(v)}" for k, v in settings.architecture.items()),
        "",
        "[training]",
        f"command = {_q(command)}",
        f"data = {_toml(list(sources))}",
        f"steps = {len(history.loss)}",
        f"minutes = {minutes:.2f}",
        f"device = {_q(device)}",
        *([f"init = {_q(init)}"] if init else []),
        f"loss_first_50 = {first:.4f}",
        f"loss_last_50 = {last:.4f}",
    ]
    if history.val_loss:
        lines.append(f"val_loss_last = {history.val_loss[-1]:.4f}")
    lines.append(f"peak_lr = {settings.lr:.4g}")
    for k, v in asdict(settings).items():
        if k not in ("name", "architecture", "minutes", "steps") and v is not None:
            lines.append(f"{k} = {_toml(v)}")
    return "\n".join(lines) + "\n"


def _q(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return _q(v)


def write_losses_csv(path: Path, h: History) -> None:
    val = dict(zip(h.val_step, h.val_loss))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss", "lr", "elapsed_s", "val_loss"])
        for s, loss, lr, t in zip(h.step, h.loss, h.lr, h.elapsed):
            v = val.get(s + 1)
            w.writerow([s + 1, f"{loss:.6f}", f"{lr:.3e}", f"{t:.2f}", "" if v is None else f"{v:.6f}"])


def plot_losses(path: Path, h: History, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    steps = np.asarray(h.step) + 1
    loss = np.asarray(h.loss)
    ax.plot(steps, loss, color="0.75", lw=0.8, label="training (each step)")
    if len(loss) >= 20:
        k = max(5, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, color="C0", label=f"training ({k}-step mean)")
    if h.val_loss:
        ax.plot(h.val_step, h.val_loss, "o-", color="C3", ms=3, label="held out")
    ax.axhline(1.0, color="k", ls=":", lw=0.8, label="predicting zeros")
    ax.set_xlabel("step")
    ax.set_ylabel("normalised-pixel loss (masked patches)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


@torch.no_grad()
def reconstruct(mae, x: torch.Tensor, mask_ratio: float, generator=None):
    """(masked input, reconstruction) in input units. Visible patches are shown as given;
    masked ones as predicted, rescaled with the true patch mean and std (as MAE's figures)."""
    mae.eval()
    _, pred, mask = mae(x, mask_ratio=mask_ratio, generator=generator)
    tok = mae.encoder.patch_embed
    target = tok.patchify(x)
    if mae.norm_pix_loss:
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        pred = pred.float() * (var + 1e-6) ** 0.5 + mean
    m = mask.unsqueeze(-1)
    masked = tok.unpatchify(target * (1 - m))
    recon = tok.unpatchify(target * (1 - m) + pred * m)
    return masked, recon


def plot_reconstructions(path: Path, mae, sampler, settings: PretrainSettings, n: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    x = sampler.batch(20_000_000, n, next(mae.parameters()).device)
    masked, recon = reconstruct(mae, x, settings.mask_ratio, step_generator(settings.seed, 0, 20_000_000, 97))
    mae.train()

    def section(t):  # one image per window: the first view (2.5D) or the middle inline (3D)
        t = t.float().cpu().numpy()
        return t[:, 0] if t.ndim == 4 and settings.tokenization == "2.5d" else (t[:, t.shape[1] // 2].T if t.ndim == 4 else t)

    rows = [("input", section(x)), (f"{settings.mask_ratio:.0%} masked", section(masked)), ("reconstruction", section(recon))]
    fig = Figure(figsize=(2 * n, 6.3), dpi=100)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n):
            ax = fig.add_subplot(3, n, r * n + c + 1)
            ax.imshow(imgs[c], cmap="gray", vmin=-3, vmax=3, aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label)
    fig.suptitle(f"{settings.name}: held-out windows (columns), time down")
    fig.tight_layout()
    fig.savefig(path)


def install_card(card: Path, model_id: str) -> Path | None:
    """Make the model visible to ``seisfm models`` and the widgets: a copy of the card in the
    user's model directory pointing at the weights where they are. None if the id is taken by
    another model."""
    from ..encoders import registry

    existing = next((c for c in registry.list_cards() if c.id == model_id), None)
    target_dir = registry.weight_dirs()[0]
    target = target_dir / f"{model_id}{CARD_SUFFIX}"
    weights = (card.parent / f"{model_id}.safetensors").resolve()
    if existing is not None and not target.is_file():
        return None
    if existing is not None and existing.checkpoint:  # a listed card: ours again, or a stale one only
        theirs = Path(existing.checkpoint).expanduser()
        theirs = theirs if theirs.is_absolute() else target_dir / theirs
        if theirs.resolve() != weights and theirs.is_file():
            return None  # another run's model with this id: never unlisted behind the user's back
    text = card.read_text(encoding="utf-8")
    text = text.replace(f'checkpoint = "{model_id}.safetensors"', f"checkpoint = {_q(str(weights))}", 1)
    target_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(target, failed=lambda path, exc: exc) as tmp:  # an OSError as it was
        tmp.write_text(text, encoding="utf-8")
    return target
