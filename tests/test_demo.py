"""`seisfm demo`: the whole loop on a small synthetic survey writes its figures, maps and report, prints the
simulated interpreter's headline and no warning. Run as a user runs it: in a fresh process, stdout and
stderr read apart."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from napari_seisfm import cli, quality
from napari_seisfm.commands.demo import FIGURE_DPI, FIGURE_INCHES, FIGURES
from napari_seisfm.interpretation import load_interpretation
from napari_seisfm.search import DEFAULT_DECISION, DEFAULT_SEGMENTER, FeatureMatrix
from napari_seisfm.synthetic import CLASSES


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS",)}  # the user's warning filters
    run = subprocess.run(
        [sys.executable, "-m", "napari_seisfm.cli", "demo", "--out", str(out), "--size", "64"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    return out, run.stdout, run.stderr


def test_demo_prints_no_warning(demo):
    _, stdout, stderr = demo
    assert stderr == ""  # the napari deprecation warning (out_of_slice_display) used to open it
    assert "warning" not in stdout.lower() and "deprecat" not in stdout.lower()


def test_headline_is_the_simulated_interpreter_with_the_default_decision(demo):
    out, stdout, _ = demo
    report = json.loads((out / "report.json").read_text())
    lines = stdout.splitlines()
    assert lines[1].startswith("  flat spot, simulated interpreter")  # right under the title
    s = report["interpreter"]
    assert s["decision"] == DEFAULT_DECISION and s["connected"] is True and s["max_clicks"] == quality.MAX_CLICKS
    shown = re.search(r"IoU after each click: ([0-9. ]+)$", lines[1]).group(1).split()
    assert [float(v) for v in shown] == [round(v, 2) for v in s["ious"]] and len(shown) == len(s["clicks"])
    if s["noc"] is not None:
        assert f"NoC@0.8 = {s['noc']}" in lines[1] and s["ious"][s["noc"] - 1] >= 0.8 > max(s["ious"][: s["noc"] - 1], default=0)
    else:
        assert f"not reached in {s['max_clicks']} clicks" in lines[1] and max(s["ious"]) < 0.8
    # the same numbers as `seisfm bench`'s protocol on the demo's own store and ground truth
    fm = FeatureMatrix.open(out / "features.zarr")
    truth = quality.grid_labels(np.load(out / "ground_truth.npy"), fm.grid) == CLASSES["flat_spot"]
    again = quality.simulated_interpreter(fm, truth, decision=DEFAULT_DECISION, grow=True)
    assert again["ious"][: len(s["ious"])] == s["ious"] and (again["noc"] <= quality.MAX_CLICKS) == (s["noc"] is not None)
    assert len(s["clicks"]) == again["positives"] + again["negatives"] and s["clicks"][0]["positive"]
    assert s["shown_iou"] == s["ious"][s["shown_after"] - 1]  # the figure's mask is the protocol's
    # the fixed 3 + 3 clicks stay as the second line
    assert (
        lines[2].startswith("  flat spot, 3 positive + 3 negative fixed clicks")
        and f"IoU {report['flat_spot']['iou']:.3f}" in lines[2]
    )
    assert "mIoU" in lines[3] and report["knn"]["method"] == DEFAULT_SEGMENTER


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_figures_are_drawn_at_their_size(demo):
    out, stdout, _ = demo
    report = json.loads((out / "report.json").read_text())
    assert report["pngs"] == list(FIGURES)
    want = (round(FIGURE_INCHES[0] * FIGURE_DPI), round(FIGURE_INCHES[1] * FIGURE_DPI))
    for name in FIGURES:
        assert _png_size(out / name) == want == (1100, 480)
        assert (out / name).stat().st_size > 30_000  # a section with overlays, not an empty canvas
        assert name in stdout


def test_maps_store_and_interpretation_reopen(demo, tmp_path):
    out, _, _ = demo
    report = json.loads((out / "report.json").read_text())
    assert 0.5 < report["flat_spot"]["auc"] <= 1 and 0 <= report["flat_spot"]["iou"] <= 1
    assert 0 < report["knn"]["miou"] <= 1 and "flat_spot" in report["knn"]["iou_per_class"]
    assert report["seconds"]["total"] > 0
    sim = np.load(out / "similarity.npy")
    assert sim.shape == tuple(report["grid"]) == (32, 32, 32)
    assert np.load(out / "knn_classes.npy").shape == (32, 32, 32)
    interp = load_interpretation(out / "interpretation.json")
    assert len(interp.positives) == 3 and len(interp.negatives) == 3
    assert interp.labels.shape == (32, 32, 32) and (interp.labels > 0).sum() <= 700
    # the clicks it saved reproduce its map through the headless twin
    args = [
        "search",
        str(out / "features.zarr"),
        "--cube",
        str(out / "synthetic.sgy"),
        "--out",
        str(tmp_path / "m.npy"),
        "--top",
        "0",
    ]
    for flag, pts in (("--pos", interp.positives), ("--neg", interp.negatives)):
        for p in pts:
            args += [flag, ",".join(f"{v:g}" for v in p)]
    assert cli.main(args) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), sim)


@pytest.mark.parametrize("argv, match", [(["--size", "8"], "--size"), (["--size", "64", "--max-clicks", "0"], "--max-clicks")])
def test_demo_refuses_bad_options(tmp_path, capsys, argv, match):
    assert cli.main(["demo", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


@pytest.mark.gui
def test_gui_opens_the_cube_the_dock_and_the_interpretation(demo, make_napari_viewer, qtbot, monkeypatch):
    """`seisfm demo --gui`: the cube through the plugin's reader, the Click-to-map dock from the manifest,
    its store loaded and the demo's clicks reopened (napari.run is the test's event loop here)."""
    import napari

    from napari_seisfm.commands import demo as demo_cmd

    out, _, _ = demo
    seen = {}

    def run():
        viewer = napari.current_viewer()
        widget = next(w for w in viewer.window.dock_widgets.values() if type(w).__name__ == "ClickToMapWidget")
        qtbot.waitUntil(lambda: widget.session is not None and len(widget.session.positives) > 0, timeout=120_000)
        seen.update(viewer=viewer, widget=widget)

    monkeypatch.setattr(napari, "run", run)
    monkeypatch.setattr(napari, "Viewer", lambda **kw: make_napari_viewer(**kw))
    demo_cmd.open_gui(out, out / "synthetic.sgy", out / "features.zarr")
    viewer, widget = seen["viewer"], seen["widget"]
    assert viewer.layers[0].metadata["kind"] == "seismic" and tuple(viewer.dims.order) == (0, 2, 1)
    saved = load_interpretation(out / "interpretation.json")
    assert len(widget.session.positives) == len(saved.positives)
