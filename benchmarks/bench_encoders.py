"""CPU throughput of the ViT encoders: SDPA attention vs the eager reference, same run.

For each tokenization and size, times forward passes (``torch.inference_mode``, float32) of the
encoder with ``scaled_dot_product_attention`` and with the unfused reference
(``softmax(Q K^T / sqrt(d)) V`` written out), interleaved so machine noise hits both alike.
Prints JSON: windows/s, tokens/s and the SDPA / eager speed ratio.

    .venv/bin/python benchmarks/bench_encoders.py                      # tiny + base (2d, 2.5d), 3d tiny
    .venv/bin/python benchmarks/bench_encoders.py --cases tiny:3d:2,base:3d:1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from napari_seisfm.encoders.vit import ViTEncoder, config, set_fused

DEFAULT_CASES = "test:2d:8,test:2.5d:8,test:3d:8,tiny:2d:2,tiny:2.5d:2,tiny:3d:1,base:2d:1,base:2.5d:1"


def bench(size: str, kind: str, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    enc = ViTEncoder(config(size, tokenization=kind)).eval()
    x = torch.randn(batch, *enc.patch_embed.input_shape)
    times = {"sdpa": [], "eager": []}
    with torch.inference_mode():
        set_fused(enc, True)  # warm-up, and the two implementations agree
        fused = enc(x)
        set_fused(enc, False)
        eager = enc(x)
        max_diff = float((fused - eager).abs().max())
        for _ in range(repeats):
            for mode in ("sdpa", "eager"):
                set_fused(enc, mode == "sdpa")
                t0 = time.perf_counter()
                enc(x)
                times[mode].append(time.perf_counter() - t0)
    n_tok = enc.n_tokens + 1
    res = {"size": size, "tokenization": kind, "batch": batch, "tokens_per_window": n_tok, "max_abs_diff_sdpa_vs_eager": max_diff}
    for mode, ts in times.items():
        t = statistics.median(ts)
        res[mode] = {"s_per_batch": t, "windows_per_s": batch / t, "tokens_per_s": batch * n_tok / t}
    res["sdpa_speedup_vs_eager"] = res["eager"]["s_per_batch"] / res["sdpa"]["s_per_batch"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=DEFAULT_CASES, help="size:tokenization:batch, comma separated")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for case in args.cases.split(","):
        size, kind, batch = case.split(":")
        rows.append(bench(size, kind, int(batch), args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "results": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
