"""What an interpreter sees, checked on the pixels of real napari screenshots (run under `xvfb-run -a`).

A small tall cube (32 inlines x 48 crosslines x 640 ms: drawn 1:1 a thin strip) opened through the
reader, a feature store whose vectors separate the upper and lower half, and the Click-to-map dock:

- the section fills most of the canvas (the default vertical exaggeration), and did not without it;
- under the similarity and threshold overlays the seismic is still readable;
- a click marker is drawn where the click is, before and after changing the exaggeration, and the click
  counts at the grid point of its survey coordinates.
"""

from __future__ import annotations

import numpy as np
import pytest
from stores import two_region_store

from napari_seisfm.io import open_cube
from napari_seisfm.plugin import view
from napari_seisfm.plugin.widgets.click_to_map import NEGATIVE, POSITIVE, SIMILARITY, THRESHOLDED, ClickToMapWidget

WAIT = 10_000  # ms; workers on a busy 2-core machine
SHAPE = (32, 48, 160)  # 4 ms samples: 640 ms of 48 traces


@pytest.fixture(scope="module")
def tall_cube(tmp_path_factory):
    from napari_seisfm.io.segy import write_segy
    from napari_seisfm.synthetic import make_survey, survey_geometry

    tmp = tmp_path_factory.mktemp("desk")
    survey = make_survey(SHAPE, seed=1)
    sgy = write_segy(tmp / "tall.sgy", survey.amplitude, survey_geometry(survey))
    geometry = open_cube(sgy).geometry
    two_region_store(tmp / "tall.zarr", geometry, 4)
    return sgy, tmp / "tall.zarr"


def _section_fraction(img) -> float:
    """Share of the canvas inside the bounding box of pixels that differ from the background (corner)."""
    rgb = img[..., :3].astype(int)
    drawn = np.abs(rgb - rgb[0, 0]).sum(-1) > 6
    return float(drawn.any(1).mean() * drawn.any(0).mean())


def _canvas_pixel(viewer, img, world) -> tuple[float, float]:
    """(row, col) of a world point on the 2-D canvas screenshot: camera centre and zoom (pixels per world unit)."""
    rows_axis, cols_axis = viewer.dims.displayed
    centre = np.asarray(viewer.scene.camera.center)[-2:]
    h, w = img.shape[:2]
    zoom = viewer.scene.camera.zoom * h / viewer.canvas.size[0]  # screenshot pixels per canvas pixel (1 under Xvfb)
    return (h / 2 + (world[rows_axis] - centre[0]) * zoom, w / 2 + (world[cols_axis] - centre[1]) * zoom)


def _lime(img) -> np.ndarray:
    rgb = img[..., :3].astype(int)
    return (rgb[..., 1] > 180) & (rgb[..., 0] < 120) & (rgb[..., 2] < 120)


def _open(make_napari_viewer, qtbot, sgy, store):
    viewer = make_napari_viewer(show=True)  # a hidden canvas is not laid out: its size and pixels are not the user's
    layer = viewer.open(str(sgy), plugin="napari-seisfm")[0]
    widget = ClickToMapWidget(viewer)
    widget.load_features(str(store))
    qtbot.waitUntil(lambda: widget.features is not None, timeout=WAIT)
    return viewer, layer, widget


def test_section_fills_the_canvas(make_napari_viewer, qtbot, tall_cube):
    viewer, layer, widget = _open(make_napari_viewer, qtbot, *tall_cube)
    assert view.exaggeration(viewer) < 1  # 640 ms against 48 traces: time is squeezed
    assert widget.display.exaggeration.value() == pytest.approx(view.exaggeration(viewer))
    filled = _section_fraction(viewer.screenshot(canvas_only=True))
    widget.display.exaggeration.setValue(1.0)  # true scale: a strip 13 times taller than wide
    strip = _section_fraction(viewer.screenshot(canvas_only=True))
    assert filled > 0.6 and strip < 0.3, (filled, strip)
    widget.display.fit_button.click()
    assert _section_fraction(viewer.screenshot(canvas_only=True)) > 0.6
    # the slider axis reads in survey units in the dock; axis labels name the axes
    assert viewer.dims.axis_labels == ("inline", "crossline", "time (ms)")
    assert widget.display.position.text() == f"inline {1000 + SHAPE[0] // 2}"


def test_click_marker_and_overlays_where_the_user_looks(make_napari_viewer, qtbot, tall_cube):
    viewer, layer, widget = _open(make_napari_viewer, qtbot, *tall_cube)
    il = 1000 + SHAPE[0] // 2
    assert viewer.dims.point[0] == pytest.approx(il)
    seismic_only = viewer.screenshot(canvas_only=True)
    survey = np.array([il, 2000 + 20, 120.0])  # upper half (time < 320 ms): the target
    pos, neg = viewer.layers[POSITIVE], viewer.layers[NEGATIVE]
    pos.add(pos.world_to_data(view.to_world(viewer, survey)))  # what napari's add tool does with a click
    neg.add(neg.world_to_data(view.to_world(viewer, [il, 2030, 560.0])))  # the lower half is not it
    qtbot.waitUntil(
        lambda: (
            widget.result is not None
            and THRESHOLDED in viewer.layers
            and len(widget.session.grid_negatives) == 1
            and not widget.map_running
            and widget.result is not None
            and widget.session.is_current(widget.result)
        ),
        timeout=WAIT,
    )
    expected_grid = widget.features.to_grid(survey, "survey")
    assert widget.session.grid_positives == [expected_grid]

    # the worst case for readability: every grid point above the threshold, the whole section tinted
    widget.connected.value = False
    widget.set_threshold(-2.0)
    assert np.asarray(viewer.layers[THRESHOLDED].data).all()
    img = viewer.screenshot(canvas_only=True)
    import os

    if os.environ.get("SEISFM_SHOTS"):
        import imageio

        imageio.imwrite(os.environ["SEISFM_SHOTS"] + "/overlay.png", img)
        viewer.screenshot(os.environ["SEISFM_SHOTS"] + "/overlay-full.png", canvas_only=False)
    # (c) the marker is drawn at the clicked place
    r, c = _canvas_pixel(viewer, img, view.to_world(viewer, survey))
    lime = _lime(img)
    assert lime.any()
    rows, cols = np.nonzero(lime)
    assert abs(rows.mean() - r) < 6 and abs(cols.mean() - c) < 6, (rows.mean(), cols.mean(), r, c)
    assert np.ptp(rows) + 1 >= 8 and np.ptp(cols) + 1 >= 8  # big enough to see (issue 10: 4 px on the real line)
    assert not _lime(seismic_only).any()
    # (b) the seismic stays readable under the overlays: where they tint, the picture still follows it
    tinted = np.abs(img[..., :3].astype(int) - seismic_only[..., :3].astype(int)).sum(-1) > 30
    tinted &= ~(np.abs(np.arange(img.shape[0])[:, None] - r) < 15) | ~(np.abs(np.arange(img.shape[1])[None] - c) < 15)
    assert tinted.mean() > 0.5  # the overlays cover the section
    under = img[..., :3].astype(float).mean(-1)[tinted]
    plain = seismic_only[..., :3].astype(float).mean(-1)[tinted]
    assert under.std() > 10 and np.corrcoef(under, plain)[0, 1] > 0.5

    # after changing the exaggeration the marker, the overlays and the click's grid point stay put
    widget.display.exaggeration.setValue(0.5 * view.exaggeration(viewer))
    assert viewer.layers[SIMILARITY].scale[2] == pytest.approx(4 * 4 * view.exaggeration(viewer))
    img = viewer.screenshot(canvas_only=True)
    r, c = _canvas_pixel(viewer, img, view.to_world(viewer, survey))
    rows, cols = np.nonzero(_lime(img))
    assert abs(rows.mean() - r) < 6 and abs(cols.mean() - c) < 6
    second = np.array([il, 2000 + 8, 500.0])  # lower half, clicked at the new exaggeration
    pos.add(pos.world_to_data(view.to_world(viewer, second)))
    qtbot.waitUntil(
        lambda: (
            len(widget.session.grid_positives) == 2
            and not widget.map_running
            and widget.result is not None
            and widget.session.is_current(widget.result)
        ),
        timeout=WAIT,
    )
    assert widget.session.grid_positives == [expected_grid, widget.features.to_grid(second, "survey")]
    np.testing.assert_allclose(pos.data[1], second)  # points stay in survey units (saved as such)
    assert widget.files.interpretation().positives[1] == pytest.approx(tuple(second))
