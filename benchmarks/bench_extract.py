"""Extraction throughput of the attribute embedder, and what the store reduction does to search.

    .venv/bin/python benchmarks/bench_extract.py [--size 128] [--reduction-size 96] [--vit]

Prints JSON with two parts:

- ``throughput``: ``extract_features`` (chunked, halo re-read per chunk, zarr store, int8) on a
  synthetic cube, in grid points per second, against the baseline of the same attribute filters
  run once on the whole cube in memory (one ``embed_block`` call on the mirror-padded array, no
  store). The ratio is the cost of streaming (halo overlap, I/O, encoding).
- ``reduction``: similarity maps and kNN from reduced stores against a float32 full-dimension store
  of the same embeddings (``napari_seisfm.store.encoding.similarity_agreement``), for the attribute
  embedder (32-d: int8 / float16 / PCA) and, with ``--vit``, a randomly initialised ViT-Tiny 2D
  encoder (192-d: the PCA-64 + int8 default). Query points are spread over the grid.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_seisfm.cube import Cube, Geometry
from napari_seisfm.encoders.attributes import AttributeEmbedder
from napari_seisfm.extract import estimate_normalisation, extract_features, mirror
from napari_seisfm.store.encoding import similarity_agreement
from napari_seisfm.synthetic import make_survey


def synthetic_cube(n: int, seed: int = 0) -> Cube:
    s = make_survey((n, n, n), seed=seed)
    return Cube.from_array(s.amplitude, Geometry.regular(s.amplitude.shape, source=f"synthetic {n}^3 seed {seed}"))


def throughput(n: int, stride: int, work: Path) -> dict:
    cube = synthetic_cube(n)
    emb = AttributeEmbedder()
    # baseline: standardise and pad the whole cube in memory, one embed_block call
    t0 = time.perf_counter()
    norm = estimate_normalisation(cube)
    x = np.clip((cube.read() - norm["mean"]) / norm["std"], -3, 3).astype(np.float32)
    idx = [mirror(np.arange(-h, m + h), m) for m, h in zip(x.shape, emb.halo)]
    whole = emb.embed_block(x[np.ix_(*idx)], (stride,) * 3)
    t_base = time.perf_counter() - t0
    points = int(np.prod(whole.shape[:3]))
    t0 = time.perf_counter()
    fv = extract_features(cube, work / "t.zarr", stride=stride, overwrite=True)
    t_extract = time.perf_counter() - t0
    return {
        "cube": [n, n, n],
        "stride": stride,
        "grid_points": points,
        "chunks": list(fv.chunks),
        "n_chunks": fv.progress()[1],
        "halo": list(emb.halo),
        "baseline_whole_array_points_per_s": points / t_base,
        "extract_points_per_s": points / t_extract,
        "extract_over_baseline": t_base / t_extract,
        "baseline_s": t_base,
        "extract_s": t_extract,
    }


def queries(grid_shape, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(1, g - 1, n) for g in grid_shape], -1)


class Cached:
    """Embedder wrapper that remembers blocks: every reduced store reuses the reference's vectors."""

    def __init__(self, inner):
        self.inner, self.card, self.halo, self.dim = inner, inner.card, inner.halo, inner.dim
        if hasattr(inner, "preferred_core"):
            self.preferred_core = inner.preferred_core
        self.memo = {}

    def checkpoint_sha256(self):
        return None

    def embed_block(self, block, stride):
        key = (block.shape, stride, hash(block.tobytes()))
        if key not in self.memo:
            self.memo[key] = self.inner.embed_block(block, stride)
        return self.memo[key]


def reduction(n: int, work: Path, vit: bool, vit_size: int = 64) -> dict:
    cube = synthetic_cube(n, seed=1)
    results = {}
    ref = extract_features(cube, work / "att_f32.zarr", pca=0, dtype="f32", overwrite=True)
    q = queries(ref.grid.shape)
    for name, pca, dtype in [("f16", 0, "f16"), ("i8 (default)", 0, "i8"), ("pca8 f32", 8, "f32"), ("pca8 i8", 8, "i8")]:
        red = extract_features(cube, work / f"att_{name.split()[0]}.zarr", pca=pca, dtype=dtype, overwrite=True)
        results[f"attributes {AttributeEmbedder().dim}-d -> {name}"] = similarity_agreement(ref, red, q)
    if vit:
        from dataclasses import replace

        import torch

        from napari_seisfm.encoders.registry import card
        from napari_seisfm.encoders.vit import build_encoder
        from napari_seisfm.encoders.vit_embedder import ViTEmbedder

        torch.manual_seed(0)
        c = replace(card("ncs-2d"), id="vit-tiny-2d-random", dim=192, extra={"architecture": {"size": "tiny"}})
        emb = Cached(ViTEmbedder(c, build_encoder(c), device="auto"))
        cube = synthetic_cube(vit_size, seed=1)
        ref = extract_features(cube, work / "vit_f32.zarr", embedder=emb, pca=0, dtype="f32", overwrite=True)
        q = queries(ref.grid.shape)
        for name, pca, dtype in [("pca64 f32", 64, "f32"), ("pca64 i8 (default)", 64, "i8"), ("f16", 0, "f16")]:
            red = extract_features(
                cube, work / f"vit_{name.split()[0]}_{dtype}.zarr", embedder=emb, pca=pca, dtype=dtype, overwrite=True
            )
            results[f"vit-tiny-2d (random weights) 192-d -> {name}"] = similarity_agreement(ref, red, q)
    return {
        "cube": [n, n, n],
        "vit_cube": [vit_size] * 3 if vit else None,
        "stride": 4,
        "queries": len(q),
        "top": "1% of grid points",
        "k": 10,
        "results": results,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--stride", type=int, default=4)
    ap.add_argument("--reduction-size", type=int, default=96)
    ap.add_argument("--vit", action="store_true", help="also measure PCA-64 on a random-weight ViT-Tiny (slow on CPU)")
    ap.add_argument("--vit-size", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = {
            "throughput": throughput(args.size, args.stride, work),
            "reduction": reduction(args.reduction_size, work, args.vit, args.vit_size),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
