"""A real napari viewer (Xvfb + Mesa) opening cubes through the plugin."""

import warnings

import numpy as np
import pytest

from napari_seisfm.display import section_order
from napari_seisfm.plugin import view


def test_reader_opens_cube_with_survey_units(shared_data, make_napari_viewer):  # data first: a skip before the viewer
    viewer = make_napari_viewer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layers = viewer.open(str(shared_data / "segyio-test" / "f3.sgy"), plugin="napari-seisfm")
    layer = layers[0]
    assert layer.data.shape == (23, 18, 75)
    # time is stretched by the viewer's vertical exaggeration: 18 crosslines / (300 ms x canvas width/height)
    ve = view.exaggeration(viewer)
    assert ve == pytest.approx(float(f"{18 / (300 * view.canvas_aspect(viewer)):.2g}"))
    np.testing.assert_allclose(layer.scale, (1, 1, 4 * ve))
    np.testing.assert_allclose(layer.translate, (111, 875, 4 * ve))
    assert tuple(layer.axis_labels) == ("inline", "crossline", "time (ms)")
    lo, hi = layer.contrast_limits
    assert lo == pytest.approx(-hi) and 0 < hi < np.abs(np.asarray(layer.data)).max()
    assert layer.metadata["geometry"]["fingerprint"] and layer.metadata["path"].endswith("f3.sgy")
    # default view: an inline section (inline on the slider), time increasing downward (rows)
    assert tuple(viewer.dims.order) == (0, 2, 1)
    assert viewer.dims.axis_labels == ("inline", "crossline", "time (ms)")
    displayed = viewer.dims.displayed
    assert displayed[0] == 2  # rows: time
    # world coordinates are survey coordinates (time x exaggeration): the centre of the cube in inline/crossline/ms
    world = layer.data_to_world((11, 9, 37))
    np.testing.assert_allclose(world, (122, 884, 152 * ve))
    np.testing.assert_allclose(view.world_to_survey(viewer, world), (122, 884, 152))
    assert view.survey_status(viewer, world) == "inline 122, crossline 884, time 152 ms"


def test_2d_line_shows_the_line(shared_data, make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.open(str(shared_data / "real" / "penobscot_xl1155.sgy"), plugin="napari-seisfm")[0]
    assert tuple(viewer.dims.order) == section_order(layer.data.shape) == (1, 2, 0)
    screenshot = viewer.screenshot(canvas_only=True)
    assert screenshot.std() > 5  # the line is drawn, not a single trace


def test_lazy_cube_layer(shared_data, make_napari_viewer, monkeypatch):
    import napari_seisfm.display as display

    monkeypatch.setattr(display, "IN_MEMORY_BYTES", 0)  # pretend the file is big
    viewer = make_napari_viewer()
    layer = viewer.open(str(shared_data / "segyio-test" / "f3.sgy"), plugin="napari-seisfm")[0]
    from napari_seisfm.cube import Cube

    assert isinstance(layer.data, Cube)
    viewer.dims.set_current_step(0, 5)
    assert viewer.screenshot(canvas_only=True).std() > 5


def test_sample_data_has_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-seisfm", "synthetic")
    kinds = {type(layer).__name__ for layer in layers}
    assert kinds == {"Image", "Labels"}
    labels = next(layer for layer in layers if type(layer).__name__ == "Labels")
    assert len(np.unique(labels.data)) >= 6
    assert labels.metadata["classes"]["flat_spot"] > 0
    assert tuple(viewer.dims.order) == (0, 2, 1)


def test_red_white_blue_is_in_the_colormap_list_after_opening_a_cube(make_napari_viewer, tmp_path):
    from napari.utils.colormaps import AVAILABLE_COLORMAPS

    from napari_seisfm.io.npy import write_npy
    from napari_seisfm.plugin.reader import get_reader
    from napari_seisfm.synthetic import make_survey, survey_geometry

    viewer = make_napari_viewer()
    s = make_survey((32, 32, 32), seed=0)
    path = write_npy(tmp_path / "c.npy", s.amplitude, survey_geometry(s))
    for data, kwargs, _kind in get_reader(str(path))(str(path)):
        layer = viewer.add_image(data, **kwargs)
    assert "seismic red-white-blue" in AVAILABLE_COLORMAPS
    layer.colormap = "seismic red-white-blue"  # what choosing it in the layer controls does
    assert layer.colormap.name == "seismic red-white-blue"
