"""benchmarks/bench_gpu_extract.py runs tiny on CPU (what a lent GPU runs at 1024^3), and counts FLOPs right."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_gpu_extract as bench  # noqa: E402

from napari_seisfm.encoders.vit import set_fused  # noqa: E402


def test_runs_tiny_on_cpu_over_the_whole_cube():
    report = bench.main(["--device", "cpu", "--size", "test", "--cube", "40", "--budget-s", "60"])
    kinds = [r["kind"] for r in report["results"]]
    assert kinds == ["2.5d", "2d", "3d"]
    for r in report["results"]:
        assert r["fraction_of_cube_done"] == 1.0  # every block embedded, nothing projected
        assert r["windows"] > 0 and r["windows_per_s"] > 0 and r["tflops_achieved"] > 0
        assert r["percent_of_peak"] is None  # no peak to compare with on CPU
    # the 2D model fuses inline and crossline sections: twice the 2.5D's sections of windows
    by = {r["kind"]: r for r in report["results"]}
    assert by["2d"]["windows"] == 2 * by["2.5d"]["windows"]


@pytest.mark.parametrize("kind", ["2.5d", "2d", "3d"])
def test_flop_count_matches_torch_counter(kind):
    """The architecture formula against torch's FLOP counter on one window (attention written out,
    so its two matmuls are counted; the fused kernel does the same arithmetic)."""
    emb = bench.make_embedder(kind, "test", "cpu", "fp32", "exact", None)
    set_fused(emb.encoder, False)
    x = torch.randn(2, *emb.encoder.patch_embed.input_shape)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        emb.encoder.patch_tokens(x)
    assert counter.get_total_flops() == pytest.approx(2 * bench.encoder_flops(emb), rel=1e-3)
