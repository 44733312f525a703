"""ViT extraction throughput on a GPU: the 2.5D, 2D and 3D ViT-B on a synthetic cube made on the device.

    .venv/bin/python benchmarks/bench_gpu_extract.py                       # a lent GPU: 1024^3, bf16, < 8 min
    .venv/bin/python benchmarks/bench_gpu_extract.py --device cpu --size test --cube 64   # CPU check, < 1 min

For each tokenization (``--kinds``, default 2.5d,2d,3d) a ViT encoder with random weights (throughput
does not depend on the weights) embeds every ``--stride``-th sample of a ``--cube``^3 cube with the
product's own tiling (``ViTEmbedder``: exact shifted tiling, a token centred on every grid point; or
``--tiling coarse``: one tiling, interpolated), block by block in the extraction's block size (the
model's preferred core plus its halo). The cube is synthetic layered seismic generated on the device
in ``--cube-dtype`` (bf16 by default) with its halo, so host memory, disk and the PCA/int8 store are
not in the figure: this measures the model, the tiling and the device. Each kind stops after
``--budget-s`` seconds and the total is projected from the grid points done.

Printed per kind: seconds (measured, and projected to the whole cube), windows per second, the
encoder FLOPs counted from the architecture (per layer (8 + 4 r) T d^2 + 4 T^2 d with MLP ratio r = 4,
plus the patch projection, for T tokens incl. cls; a multiply-add is 2 FLOPs), achieved TFLOP/s and % of the device's dense bf16 peak
(``--peak-tflops``, default 989: H100/H200 SXM dense BF16), against the NCS paper's 19.6 s for a
1024^3 cube with the 2.5D ViT-B on an RTX 4000.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace

import torch

from napari_seisfm.encoders.base import grid_points
from napari_seisfm.encoders.registry import card
from napari_seisfm.encoders.vit import build_encoder
from napari_seisfm.encoders.vit_embedder import ViTEmbedder

PAPER_S = 19.6  # NCS paper, Table 1: 1024^3 cube, 2.5D ViT-B, RTX 4000
CARDS = {"2.5d": "ncs-2.5d", "2d": "ncs-2d", "3d": "ncs-3d"}
TEST_ARCH = {"size": "test"}  # window 32, patch 8, 64 wide, 2 layers: the CPU check


def make_embedder(kind: str, size: str, device: str, precision: str, tiling: str, batch_size: int | None) -> ViTEmbedder:
    c = card(CARDS[kind])
    if size == "test":
        n = 3 if kind == "3d" else 2
        c = replace(
            c, id=f"{c.id}-test", dim=64, window=(32,) * n, patch=(8,) * n, extra={**c.extra, "architecture": dict(TEST_ARCH)}
        )
    torch.manual_seed(0)
    return ViTEmbedder(c, build_encoder(c), device=device, precision=precision, tiling=tiling, batch_size=batch_size)


def synthetic_cube(shape, device, dtype, seed=0) -> torch.Tensor:
    """Layered seismic on the device: dipping, folded reflectors (a sum of sinusoids in a warped time) + noise."""
    g = torch.Generator(device=device).manual_seed(seed)
    i = torch.arange(shape[0], device=device, dtype=torch.float32)[:, None, None]
    j = torch.arange(shape[1], device=device, dtype=torch.float32)[None, :, None]
    t = torch.arange(shape[2], device=device, dtype=torch.float32)[None, None, :]
    warped = t + 0.05 * i + 0.03 * j + 6 * torch.sin(i / 97) * torch.cos(j / 131)
    out = torch.sin(warped * 0.31) + 0.5 * torch.sin(warped * 0.11 + 1.0)
    out = out + 0.1 * torch.randn(shape, device=device, generator=g)
    return out.to(dtype)


def encoder_flops(emb: ViTEmbedder) -> float:
    """FLOPs of one forward pass of one window (multiply-add = 2)."""
    enc = emb.encoder
    cfg = enc.cfg
    t = enc.n_tokens + 1
    d = cfg.dim
    per_layer = (8 + 4 * cfg.mlp_ratio) * t * d * d + 4 * t * t * d  # qkv + proj 8td^2, MLP 4 r td^2, QK^T and AV 4t^2d
    patch = 2 * enc.n_tokens * enc.patch_embed.proj.weight.numel()
    return cfg.depth * per_layer + patch


def run_kind(kind, args) -> dict:
    emb = make_embedder(kind, args.size, args.device, args.precision, args.tiling, args.batch_size)
    dev = emb.device
    halo = emb.halo
    core = emb.preferred_core()
    stride = (args.stride,) * 3
    n = args.cube
    grid = tuple(grid_points(n, s) for s in stride)
    total_points = math.prod(grid)
    chunk = [max(1, c // s) for c, s in zip(core, stride)]
    cube = synthetic_cube(tuple(n + 2 * h for h in halo), dev, getattr(torch, args.cube_dtype))
    windows = [0]
    forward = emb._forward

    def counting_forward(x):
        windows[0] += x.shape[0]
        return forward(x)

    emb._forward = counting_forward
    starts = [range(0, g, c) for g, c in zip(grid, chunk)]
    blocks = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    done_points, t0 = 0, None
    warm = True
    with torch.inference_mode():
        for a, b, c in [blocks[0]] + blocks:
            g0 = (a, b, c)
            gn = [min(ch, gg - s) for ch, gg, s in zip(chunk, grid, g0)]
            lo = [s * st for s, st in zip(g0, stride)]
            hi = [min((s + k) * st, n) + 2 * h for s, k, st, h in zip(g0, gn, stride, halo)]
            vol = cube[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].float()
            out = emb._embed(vol, tuple(gn), stride, halo, tiled=(0, 1, 2) if kind == "3d" else (1, 2))
            if emb.fusion == "inline+crossline":  # the 2D model's late fusion, as embed_block does it
                sw, nw, hw = ((x[1], x[0], x[2]) for x in (stride, gn, halo))
                out = out + emb._embed(vol.transpose(0, 1), tuple(nw), tuple(sw), tuple(hw), tiled=(1, 2)).transpose(0, 1)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            del out
            if warm:  # the first block again, untimed: kernels chosen, memory pools filled
                warm, windows[0] = False, 0
                t0 = time.perf_counter()
                continue
            done_points += math.prod(gn)
            if time.perf_counter() - t0 > args.budget_s:
                break
    seconds = time.perf_counter() - t0
    fraction = done_points / total_points
    flops = windows[0] * encoder_flops(emb)
    tflops = flops / seconds / 1e12
    return {
        "kind": kind,
        "model": emb.card.id,
        "size": args.size,
        "device": str(dev),
        "autocast": str(emb.amp_dtype).replace("torch.", "") if emb.amp_dtype else "fp32",
        "cube": [n] * 3,
        "stride": list(stride),
        "tiling": emb.tiling,
        "block_core": list(core),
        "batch_size": emb.batch_size,
        "seconds_measured": seconds,
        "fraction_of_cube_done": fraction,
        "seconds_projected_whole_cube": seconds / fraction,
        "windows": windows[0],
        "windows_per_s": windows[0] / seconds,
        "tokens_per_window": emb.encoder.n_tokens,
        "tflop_per_window": encoder_flops(emb) / 1e12,
        "tflops_achieved": tflops,
        "percent_of_peak": 100 * tflops / args.peak_tflops if dev.type == "cuda" else None,
        "vs_paper_19.6s": PAPER_S / (seconds / fraction) if kind == "2.5d" and args.size == "base" and n == 1024 else None,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--size", default="base", choices=("base", "test"), help="base: ViT-B (the paper's); test: a micro ViT for CPU checks"
    )
    ap.add_argument("--cube", type=int, default=1024)
    ap.add_argument("--stride", type=int, default=4)
    ap.add_argument("--kinds", default="2.5d,2d,3d")
    ap.add_argument("--precision", default=None, help="autocast: bf16 (default on GPU), fp32 (default on CPU), fp16")
    ap.add_argument("--cube-dtype", default="bfloat16")
    ap.add_argument("--tiling", default="exact", choices=("exact", "coarse"))
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument(
        "--budget-s", type=float, default=130.0, help="seconds per kind before projecting (3 kinds + start-up fit in 8 min)"
    )
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the device (H100/H200 SXM: 989)")
    args = ap.parse_args(argv)
    if args.precision is None:
        args.precision = "fp32" if args.device == "cpu" else "bf16"
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    report = {
        "device_name": torch.cuda.get_device_name()
        if args.device.startswith("cuda") and torch.cuda.is_available()
        else args.device,
        "torch": torch.__version__,
        "results": [],
    }
    for kind in args.kinds.split(","):
        r = run_kind(kind.strip(), args)
        report["results"].append(r)
        print(json.dumps(r), flush=True)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
