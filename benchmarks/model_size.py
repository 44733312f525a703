"""Faithfulness check: parameters and multiply-accumulates of our ViT-B encoders vs the paper.

Counts one forward pass at batch 1 of the 2D, 2.5D and 3D encoders with
``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2), split into the patch
projection (convolution), the other linear layers, and the attention matmuls (Q K^T and
A V, counted on the eager reference implementation, whose matmuls are visible as ``bmm``).
Compares with Table 1 of the NCS-models paper and prints JSON (``--markdown`` adds a table).

    .venv/bin/python benchmarks/model_size.py --markdown
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from napari_seisfm.encoders.vit import ViTEncoder, config, set_fused

PAPER = {  # Table 1 of the NCS-models paper
    "2d": {"params_M": 85.80, "GMac": 16.87},
    "2.5d": {"params_M": 85.86, "GMac": 66.91},
    "3d": {"params_M": 88.21, "GMac": 242.19},
}


def count(kind: str) -> dict:
    torch.manual_seed(0)
    enc = ViTEncoder(config("base", tokenization=kind)).eval()
    set_fused(enc, False)  # eager attention: its matmuls show up as bmm
    params = sum(p.numel() for p in enc.parameters())
    tok = enc.patch_embed
    x = torch.randn(1, *tok.input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        enc(x)
    ops = {str(k).split(".")[-1] if not isinstance(k, str) else k: v for k, v in fc.get_flop_counts()["Global"].items()}
    flops = {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}
    conv = sum(v for k, v in flops.items() if "convolution" in k)
    bmm = sum(v for k, v in flops.items() if "bmm" in k)
    lin = sum(v for k, v in flops.items() if k.endswith(("addmm", "mm")) and "bmm" not in k)
    total = fc.get_total_flops()
    # how MAE/timm-style counting differs: an RGB patch projection, and the position code as a
    # (frozen) parameter of 1 + n_tokens rows
    patch_numel = tok.proj.weight[0, 0].numel()
    rgb_extra = 2 * patch_numel * enc.cfg.dim
    pos_param = (1 + tok.n_tokens) * enc.cfg.dim
    orient = sum(p.numel() for n, p in enc.named_parameters() if "orient" in n)
    return {
        "tokenization": kind,
        "tokens": tok.n_tokens + 1,
        "params_M": params / 1e6,
        "params_M_mae_style": (params + rgb_extra + pos_param) / 1e6,
        "orientation_params": orient,
        "GMac_patch_projection": conv / 2e9,
        "GMac_linear": lin / 2e9,
        "GMac_attention_matmuls": bmm / 2e9,
        "GMac_without_attention": (conv + lin) / 2e9,
        "GMac_total": total / 2e9,
        "ops": {k: v / 2e9 for k, v in ops.items()},
        "paper": PAPER[kind],
    }


def markdown(rows: list[dict]) -> str:
    out = [
        "| tokenization | tokens | params (M) ours | params (M) MAE-style | params (M) paper "
        "| GMac w/o attention matmuls | GMac attention matmuls | GMac total | GMac paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['tokenization']} | {r['tokens']} | {r['params_M']:.2f} | {r['params_M_mae_style']:.2f} "
            f"| {r['paper']['params_M']:.2f} | {r['GMac_without_attention']:.2f} | {r['GMac_attention_matmuls']:.2f} "
            f"| {r['GMac_total']:.2f} | {r['paper']['GMac']:.2f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--kinds", default="2d,2.5d,3d")
    args = ap.parse_args()
    rows = [count(k) for k in args.kinds.split(",")]
    print(json.dumps(rows, indent=1))
    if args.markdown:
        print(markdown(rows))


if __name__ == "__main__":
    main()
