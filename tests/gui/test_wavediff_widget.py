"""The "Velocity <-> seismic" dock in a real napari viewer (run under xvfb-run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_seisfm.plugin.widgets._dock import select
from napari_seisfm.wavediff.data import SETUPS
from napari_seisfm.wavediff.diffusion import DIFFUSION_CONFIGS
from napari_seisfm.wavediff.model import WaveDiffusion, save
from napari_seisfm.wavediff.vqae import VQ_CONFIGS

pytestmark = pytest.mark.gui


@pytest.fixture
def messages(monkeypatch):
    from napari_seisfm.plugin.widgets import _notify

    seen = {"info": [], "error": []}
    monkeypatch.setattr(_notify, "show_info", seen["info"].append)
    monkeypatch.setattr(_notify, "show_error", seen["error"].append)
    return seen


@pytest.fixture
def dock(make_napari_viewer, tmp_path):
    from napari_seisfm.plugin.widgets.wavediff import WaveDiffWidget

    torch.manual_seed(0)
    model = WaveDiffusion(SETUPS["micro"], VQ_CONFIGS["micro"], DIFFUSION_CONFIGS["micro"])
    path = save(model, tmp_path / "micro")
    viewer = make_napari_viewer()
    w = WaveDiffWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.model_path.value = str(path)
    return viewer, w


def test_forward_models_the_velocity_layer(dock, qtbot):
    viewer, w = dock
    v = np.full((3, 24, 24), 2000.0, np.float32)
    v[:, 12:] = 3000.0
    viewer.add_image(v, name="velocity")
    assert w.layer.value.name == "velocity"
    assert w.forward()
    qtbot.waitUntil(lambda: w.results_viewer is not None and "shot gathers (F)" in w.results_viewer.layers, timeout=30000)
    g = SETUPS["micro"].geometry
    gathers = w.results_viewer.layers["shot gathers (F)"]
    assert gathers.data.shape == (1, g.n_sources, g.nt, g.n_receivers)
    # in their own window, in seconds and metres, sliders named (not stacked on the survey at its origin)
    assert "shot gathers (F)" not in viewer.layers
    assert gathers.scale[2] == pytest.approx(g.dt) and w.results_viewer.dims.axis_labels[:2] == ("pair", "shot")
    assert "2 shot gathers" in w.status.text_plain()
    viewer.close()
    qtbot.waitUntil(lambda: w.results_viewer is None, timeout=5000)  # the results window went with the viewer


def test_sample_shows_pairs_and_their_residual(dock, qtbot):
    viewer, w = dock
    w.n.value = 2
    assert w.sample()
    qtbot.waitUntil(lambda: w.results_viewer is not None and "PDE residual" in w.results_viewer.layers, timeout=60000)
    layers = w.results_viewer.layers
    assert layers["generated velocity"].data.shape == (2, 1, 16, 16)
    assert layers["generated velocity"].data.min() >= 1500
    assert layers["F(generated velocity)"].data.shape == layers["generated seismic"].data.shape
    assert w.results_viewer.grid.enabled  # side by side, not stacked
    assert "PDE deviation mean" in w.status.text_plain()


def test_bad_velocity_layer_is_one_line(dock, messages, qtbot):
    viewer, w = dock
    viewer.add_image(np.zeros((16, 16), np.float32), name="zeros")
    select(w.layer, "zeros")
    assert w.forward()
    qtbot.waitUntil(lambda: bool(messages["error"]), timeout=30000)
    assert messages["error"] == ["velocity layer: contains non-positive velocities (min 0 m/s)"]
    assert w.results_viewer is None


def test_missing_model_is_one_line(dock, messages, qtbot):
    viewer, w = dock
    w.model_path.value = "/nowhere/m.safetensors"
    assert w.sample()  # loaded in the worker: the error comes back as one line
    qtbot.waitUntil(lambda: bool(messages["error"]), timeout=30000)
    assert messages["error"] == ["/nowhere/m.safetensors: no such model file"]
