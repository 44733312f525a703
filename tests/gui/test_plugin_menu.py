"""Every dock as a user opens it: from the Plugins menu, where napari hands the widget a public-only proxy of
the viewer (its private attributes, the Qt window among them, are out of bounds) instead of the viewer."""

from __future__ import annotations

import warnings
from importlib import resources

import numpy as np
import pytest
import yaml

from napari_seisfm.display import cube_layer
from napari_seisfm.store.volume import FeatureVolume
from napari_seisfm.synthetic import make_survey

pytestmark = pytest.mark.gui

MANIFEST = yaml.safe_load(resources.files("napari_seisfm").joinpath("napari.yaml").read_text())
DOCKS = [w["display_name"] for w in MANIFEST["contributions"]["widgets"]]


@pytest.mark.parametrize("name", DOCKS)
def test_every_dock_opens_from_the_plugins_menu(make_napari_viewer, name):
    viewer = make_napari_viewer()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # napari's "private attribute access ... deprecated"
        dock, widget = viewer.window.add_plugin_dock_widget("napari-seisfm", name)
    assert dock.isVisibleTo(viewer.window._qt_window) and widget.viewer is not viewer  # the proxy, as in the app


def test_a_dock_from_the_menu_runs_and_goes_with_its_viewer(make_napari_viewer, qtbot, tmp_path):
    from napari_seisfm.io import open_cube

    path = tmp_path / "survey.npy"
    np.save(path, make_survey((32, 32, 48), seed=7).amplitude)
    viewer = make_napari_viewer(show=True)
    data, kwargs, _ = cube_layer(open_cube(path))
    viewer.add_image(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-seisfm", "Extract embeddings")
    qtbot.waitUntil(lambda: widget.jobs._watcher is not None, timeout=5_000)  # found the window it is shown in
    widget.out.value = str(tmp_path / "w.zarr")
    widget.run_button.click()
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=60_000)
    assert FeatureVolume.open(tmp_path / "w.zarr").complete
    assert viewer.layers[-1].metadata["path"] == str(tmp_path / "w.zarr")  # added through the proxy
    viewer.close()
    assert widget.jobs.closed  # the viewer's window closing tore the dock's jobs down


def test_click_to_map_from_the_menu_maps_a_click(make_napari_viewer, qtbot, tmp_path):
    from napari_seisfm.cube import Cube
    from napari_seisfm.extract import extract_features
    from napari_seisfm.plugin.widgets.click_to_map import POSITIVE
    from napari_seisfm.synthetic import survey_geometry

    survey = make_survey((32, 32, 32), seed=0)
    cube = Cube.from_array(survey.amplitude, survey_geometry(survey))
    extract_features(cube, tmp_path / "f.zarr", stride=2)
    viewer = make_napari_viewer(show=True)
    data, kw, _ = cube_layer(cube, name="seismic")
    viewer.add_image(data, **kw)
    _, widget = viewer.window.add_plugin_dock_widget("napari-seisfm", "Click-to-map")
    widget.load_features(str(tmp_path / "f.zarr"))
    qtbot.waitUntil(lambda: widget.features is not None, timeout=30_000)
    g = cube.geometry
    viewer.layers[POSITIVE].add([g.ilines[16], g.xlines[16], g.samples[16]])
    qtbot.waitUntil(lambda: widget.result is not None and not widget.map_running, timeout=30_000)
    assert widget.session.grid_positives == [(8, 8, 8)]
    assert viewer.layers["similarity"].data.shape == (16, 16, 16)
