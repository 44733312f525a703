"""MAE pretraining of a seismic ViT on synthetic (or any) cubes; headless, CPU or GPU.

    python -m napari_seisfm.encoders.pretrain --tokenization 2.5d --size test --minutes 4 \
        --out models/seisfm-micro-2.5d.safetensors

Windows are drawn at random positions of standardised cubes (unit variance, clipped at 3 std:
the NCS recipe): section images for 2D, the four views through a random trace for 2.5D,
blocks for 3D. Loss: MAE's normalised-pixel MSE on the masked patches (85% masked by default).
The encoder weights are saved as safetensors (keys as ``ViTEncoder.state_dict()``), with the
training settings in the file's metadata. Cubes: ``--cube FILE.npy`` (repeatable) or, by
default, seeded surveys from ``napari_seisfm.synthetic.make_survey``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from .tokenizers import view_steps
from .vit import MaskedAutoencoder, config
from .vit_embedder import pick_device, sample_views


def standardise(cube: np.ndarray) -> np.ndarray:
    std = float(cube.std()) or 1.0
    return np.clip(cube / std, -3.0, 3.0).astype(np.float32)


def random_windows(vol: torch.Tensor, kind: str, window: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """``batch`` random training windows from one cube on its device."""
    w = window
    shape = vol.shape

    def pick(n, lo, hi):
        return torch.randint(lo, hi, (n,), generator=gen).tolist()

    if kind == "3d":
        s = [pick(batch, 0, shape[k] - w + 1) for k in range(3)]
        return torch.stack([vol[a:a + w, b:b + w, c:c + w] for a, b, c in zip(*s)])
    if kind == "2d":  # inline or crossline sections, rows time
        out = []
        for _ in range(batch):
            axis = pick(1, 0, 2)[0]
            sec = vol[pick(1, 0, shape[0])[0]] if axis == 0 else vol[:, pick(1, 0, shape[1])[0]]
            x0, t0 = pick(1, 0, sec.shape[0] - w + 1)[0], pick(1, 0, shape[2] - w + 1)[0]
            out.append(sec[x0:x0 + w, t0:t0 + w].T)
        return torch.stack(out)
    centre = torch.stack(
        [torch.tensor(pick(batch, 0, shape[0])), torch.tensor(pick(batch, 0, shape[1])),
         torch.tensor(pick(batch, 0, shape[2] - w + 1))], dim=1
    ).to(vol.device)
    steps = torch.as_tensor(view_steps(), dtype=torch.float32, device=vol.device)
    return sample_views(vol, centre, steps, w)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="MAE pretraining of a seismic ViT")
    ap.add_argument("--tokenization", default="2.5d", choices=["2d", "2.5d", "3d"])
    ap.add_argument("--size", default="test", help="ViT size (vit.CONFIGS): test, tiny, small, base")
    ap.add_argument("--cube", action="append", default=[], help=".npy cube (repeatable); default: synthetic")
    ap.add_argument("--n-synthetic", type=int, default=4, help="synthetic surveys when no --cube")
    ap.add_argument("--synthetic-size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--minutes", type=float, default=4.0, help="wall-clock budget")
    ap.add_argument("--max-steps", type=int, default=100_000)
    ap.add_argument("--mask-ratio", type=float, default=0.85)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", required=True, help="encoder weights (.safetensors)")
    args = ap.parse_args(argv)

    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    if args.cube:
        cubes = [standardise(np.load(p, mmap_mode="r")[...]) for p in args.cube]
        data_desc = ", ".join(args.cube)
    else:
        from ..synthetic import make_survey

        n = args.synthetic_size
        cubes = [standardise(make_survey((n, n, n), seed=1000 + i).amplitude) for i in range(args.n_synthetic)]
        data_desc = f"{args.n_synthetic} synthetic surveys make_survey(({n},{n},{n}), seed=1000..{999 + args.n_synthetic})"
    vols = [torch.from_numpy(c).to(device) for c in cubes]
    cfg = config(args.size, tokenization=args.tokenization, mask_ratio=args.mask_ratio)
    model = MaskedAutoencoder(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    amp = torch.bfloat16 if device.type == "cuda" else None
    budget, t0, step, losses = args.minutes * 60, time.perf_counter(), 0, []
    while step < args.max_steps and time.perf_counter() - t0 < budget:
        frac = min(1.0, (time.perf_counter() - t0) / budget)
        lr = args.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * frac))  # warm-up + cosine
        for g in opt.param_groups:
            g["lr"] = lr
        x = random_windows(vols[step % len(vols)], cfg.tokenization, cfg.window, args.batch, gen)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss, _, _ = model(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 50 == 0:
            print(json.dumps({"step": step, "loss": float(np.mean(losses[-50:])), "lr": lr,
                              "elapsed_s": round(time.perf_counter() - t0, 1)}), flush=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.encoder.state_dict().items()}
    meta = {
        "tokenization": cfg.tokenization, "size": args.size, "steps": str(step), "batch": str(args.batch),
        "mask_ratio": str(cfg.mask_ratio), "lr": str(args.lr), "seed": str(args.seed), "data": data_desc,
        "loss_first_50": f"{np.mean(losses[:50]):.4f}", "loss_last_50": f"{np.mean(losses[-50:]):.4f}",
        "device": device.type, "seconds": f"{time.perf_counter() - t0:.0f}",
    }
    save_file(sd, args.out, metadata=meta)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
