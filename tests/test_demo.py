"""`seisfm demo`: the whole loop on a small synthetic survey writes its pictures, maps and report."""

from __future__ import annotations

import json

import numpy as np

from napari_seisfm import cli
from napari_seisfm.interpretation import load_interpretation


def test_demo_runs_and_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--size", "64"]) == 0
    text = capsys.readouterr().out
    assert "flat spot" in text and "kNN" in text and "mIoU" in text
    report = json.loads((out / "report.json").read_text())
    for name in report["pngs"]:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert {"demo_similarity.png", "demo_knn.png"} <= set(report["pngs"])
    assert 0.5 < report["flat_spot"]["auc"] <= 1 and 0 <= report["flat_spot"]["iou"] <= 1
    assert 0 < report["knn"]["miou"] <= 1 and "flat_spot" in report["knn"]["iou_per_class"]
    assert report["seconds"]["total"] > 0
    sim = np.load(out / "similarity.npy")
    assert sim.shape == tuple(report["grid"]) == (32, 32, 32)
    interp = load_interpretation(out / "interpretation.json")
    assert len(interp.positives) == 3 and len(interp.negatives) == 3
    assert interp.labels.shape == (32, 32, 32) and (interp.labels > 0).sum() <= 700
    # the clicks it saved reproduce its map through the headless twin
    args = ["search", str(out / "features.zarr"), "--cube", str(out / "synthetic.sgy"), "--out", str(tmp_path / "m.npy"), "--top", "0"]
    for flag, pts in (("--pos", interp.positives), ("--neg", interp.negatives)):
        for p in pts:
            args += [flag, ",".join(f"{v:g}" for v in p)]
    assert cli.main(args) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), sim)


def test_demo_refuses_a_tiny_cube(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--size", "8"]) == 2
    assert "--size" in capsys.readouterr().err
