"""Click-to-map dock widget in a real napari viewer (run under `xvfb-run -a`)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from stores import two_region_store

from napari_seisfm import cli
from napari_seisfm.cube import Cube, Geometry
from napari_seisfm.display import KNN, SIMILARITY, THRESHOLDED, cube_layer
from napari_seisfm.extract import extract_features
from napari_seisfm.io import open_cube
from napari_seisfm.plugin.widgets import click_to_map as ctm
from napari_seisfm.plugin.widgets.click_to_map import NEGATIVE, POSITIVE, ClickToMapWidget
from napari_seisfm.search import CentroidSearch, FeatureMatrix, KnnSegmenter, ProbeSearch, connected_to

WAIT = 10_000  # ms; workers on a busy 2-core machine


@pytest.fixture(scope="module")
def survey_store(tmp_path_factory):
    """A 48^3 synthetic survey written as SEG-Y, and its attribute feature store at stride 2."""
    from napari_seisfm.io.segy import write_segy
    from napari_seisfm.synthetic import make_survey, survey_geometry

    tmp = tmp_path_factory.mktemp("ctm")
    survey = make_survey((48, 48, 48), seed=0)
    sgy = write_segy(tmp / "cube.sgy", survey.amplitude, survey_geometry(survey))
    extract_features(open_cube(sgy), tmp / "features.zarr", stride=2)
    return sgy, tmp / "features.zarr", survey


@pytest.fixture(scope="module")
def two_cluster(tmp_path_factory):
    """A cube and a store whose vectors form two well separated clusters: upper and lower half (time)."""
    tmp = tmp_path_factory.mktemp("two")
    geometry = Geometry.regular((32, 32, 32), first_inline=100, first_crossline=200, sample_interval=4.0)
    cube = Cube.from_array(np.random.default_rng(0).normal(size=(32, 32, 32)).astype(np.float32), geometry)
    two_region_store(tmp / "two.zarr", geometry, 2)
    return cube, tmp / "two.zarr"


@pytest.fixture
def errors(monkeypatch):
    """Messages the widget shows as error / info notifications."""
    seen = {"error": [], "info": []}
    monkeypatch.setattr(ctm._notify, "show_error", seen["error"].append)
    monkeypatch.setattr(ctm._notify, "show_info", seen["info"].append)
    return seen


def _widget(make_napari_viewer, qtbot, cube, store):
    viewer = make_napari_viewer()
    data, kw, _ = cube_layer(cube, name="seismic")
    viewer.add_image(data, **kw)
    widget = ClickToMapWidget(viewer)
    widget.load_features(str(store))
    qtbot.waitUntil(lambda: widget.features is not None, timeout=WAIT)
    return viewer, widget


def _wait_map(qtbot, widget, n_pos, n_neg=0):
    """Until the shown map is the one for these click counts."""
    qtbot.waitUntil(
        lambda: (
            widget.result is not None
            and not widget.map_running
            and widget.session.is_current(widget.result)
            and len(widget.session.grid_positives) == n_pos
            and len(widget.session.grid_negatives) == n_neg
        ),
        timeout=WAIT,
    )


def test_points_make_similarity_layer(make_napari_viewer, qtbot, survey_store):
    sgy, store, _ = survey_store
    cube = open_cube(sgy)
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    assert POSITIVE in viewer.layers and NEGATIVE in viewer.layers
    g = cube.geometry
    # off-grid survey coordinates: snapped to the nearest feature-grid point (stride 2)
    viewer.layers[POSITIVE].add([g.ilines[20] + 0.6, g.xlines[31], g.samples[30] + 5.0])
    viewer.layers[NEGATIVE].add([g.ilines[5], g.xlines[5], g.samples[4]])
    _wait_map(qtbot, widget, 1, 1)
    layer = viewer.layers[SIMILARITY]
    spacing = np.asarray(g.spacing)
    np.testing.assert_allclose(layer.scale, 2 * spacing)
    np.testing.assert_allclose(layer.translate, g.origin)
    assert layer.data.shape == (24, 24, 24)  # the feature grid, no upsampled copy
    # the click counts at the nearest grid point and stays drawn where it was clicked (inline 20.6, not 20)
    np.testing.assert_allclose(viewer.layers[POSITIVE].data[0], [g.ilines[20] + 0.6, g.xlines[31], g.samples[30] + 5.0])
    assert widget.session.grid_positives == [(10, 16, 16)] and widget.session.grid_negatives == [(2, 2, 2)]
    # values: the engine's map for the same clicks (the default decision: the click probe)
    search = ProbeSearch(FeatureMatrix.open(store))
    search.set_clicks([(10, 16, 16)], [(2, 2, 2)])
    np.testing.assert_array_equal(layer.data, search.score_map())
    # the default threshold (0.5) and only the body connected to the positive click
    mask = viewer.layers[THRESHOLDED]
    assert widget.threshold_value() == 0.5
    np.testing.assert_array_equal(mask.data, connected_to(search.score_map() >= 0.5, [(10, 16, 16)]).astype(np.uint8))
    # threshold slider -> binary labels on the same grid; every body when "connected" is off
    widget.connected.value = False
    widget.set_threshold(0.3)
    np.testing.assert_array_equal(mask.data, (search.score_map() >= 0.3).astype(np.uint8))
    np.testing.assert_allclose(mask.scale, layer.scale)
    assert layer.contrast_limits[0] == pytest.approx(0.5)  # only what the default threshold selects is tinted
    # top matches: the list is filled and "next" moves the viewer there
    assert widget.match_list.count() == len(widget.matches) > 0
    widget.next_match()
    np.testing.assert_allclose(viewer.dims.point, widget.matches[0].survey)
    np.testing.assert_allclose(viewer.layers["match"].data, [widget.matches[0].survey])  # a ring marks it
    widget.next_match()
    np.testing.assert_allclose(viewer.dims.point, widget.matches[1].survey)
    # a second click updates the map; undo brings the first map back
    viewer.layers[POSITIVE].add([g.ilines[30], g.xlines[10], g.samples[20]])
    _wait_map(qtbot, widget, 2, 1)
    search.add((15, 5, 10))
    np.testing.assert_array_equal(viewer.layers[SIMILARITY].data, search.score_map())
    widget.undo()  # removes the latest click: the second positive
    _wait_map(qtbot, widget, 1, 1)
    search.remove((15, 5, 10))
    np.testing.assert_array_equal(viewer.layers[SIMILARITY].data, search.score_map())


def test_click_outside_volume_refused(make_napari_viewer, qtbot, survey_store, errors):
    sgy, store, _ = survey_store
    viewer, widget = _widget(make_napari_viewer, qtbot, open_cube(sgy), store)
    g = open_cube(sgy).geometry
    viewer.layers[POSITIVE].add([g.ilines[-1] + 50, g.xlines[3], g.samples[3]])
    qtbot.waitUntil(lambda: len(viewer.layers[POSITIVE].data) == 0, timeout=WAIT)
    assert errors["error"] and "outside the volume" in errors["error"][0]
    qtbot.wait(300)
    assert SIMILARITY not in viewer.layers and widget.result is None


def test_no_positive_click_message(make_napari_viewer, qtbot, survey_store, errors):
    sgy, store, _ = survey_store
    viewer, widget = _widget(make_napari_viewer, qtbot, open_cube(sgy), store)
    g = open_cube(sgy).geometry
    viewer.layers[NEGATIVE].add([g.ilines[10], g.xlines[10], g.samples[10]])
    qtbot.waitUntil(lambda: any("No positive click yet" in m for m in errors["info"]), timeout=WAIT)
    assert "No positive click yet" in widget.status.text_plain()
    assert SIMILARITY not in viewer.layers and widget.result is None


def test_store_of_another_cube_refused(make_napari_viewer, qtbot, survey_store, two_cluster, errors):
    _, store, _ = survey_store
    cube, _ = two_cluster
    viewer = make_napari_viewer()
    data, kw, _ = cube_layer(cube, name="other")
    viewer.add_image(data, **kw)
    widget = ClickToMapWidget(viewer)
    widget.load_features(str(store))
    qtbot.waitUntil(lambda: bool(errors["error"]), timeout=WAIT)
    assert "another cube" in errors["error"][0]
    assert widget.features is None and POSITIVE not in viewer.layers


def test_knn_from_painted_labels(make_napari_viewer, qtbot, two_cluster, errors, tmp_path):
    cube, store = two_cluster
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    training = widget.segmentation.new_training_labels()
    assert training.data.shape == (16, 16, 16)
    # one class only: a message, no result
    training.data[3, 3, 2] = 1
    widget.segmentation.run_knn()
    assert errors["error"] and "label at least two classes" in errors["error"][-1]
    assert KNN not in viewer.layers
    # paint a few strokes of two classes: upper half class 1, lower half class 2
    training.data[3, 3:6, 2] = 1
    training.data[12, 8:11, 12] = 2
    training.refresh()
    viewer.dims.set_point(0, cube.geometry.ilines[12])
    expect = np.where(np.arange(16) < 8, 1, 2)[None, None, :] * np.ones((16, 16, 1), int)
    # the default read-out from two strokes: the linear model with context up to 12 grid points (most of this
    # 16^3 toy grid) moves 19 of the 4096 boundary points; kNN separates such clusters exactly (tests/test_search.py::test_knn_separable_clusters)
    widget.segmentation.run_knn()
    qtbot.waitUntil(lambda: widget.segmentation.knn_result is not None and widget.segmentation.jobs.worker is None, timeout=WAIT)
    knn = viewer.layers[KNN]
    assert (knn.data == expect).mean() > 0.99
    # a legend: a row per class with its name, the painted strokes' colour and its share of the grid; the
    # largest class (the background of most sections) is drawn transparent until ticked
    legend = widget.segmentation.legend
    assert legend.names() == {1: "class 1", 2: "class 2"}
    assert [legend.item(r, 2).text() for r in range(2)] == ["50%", "50%"]
    assert legend.hidden_names() == ["class 1"] and "transparent" in widget.status.text_plain()
    assert knn.colormap.map(1)[3] == 0  # see-through
    np.testing.assert_allclose(knn.colormap.map(2)[:3], np.asarray(training.get_color(2))[:3], atol=1e-6)
    legend.item(0, 0).setCheckState(Qt.CheckState.Checked)  # shown again
    assert knn.colormap.map(1)[3] == 1
    legend.item(1, 1).setText("salt")  # named: kept with the training labels, shown when hovering the overlay
    assert training.metadata["class_names"] == {"1": "class 1", "2": "salt"}
    assert list(knn.features["class"]) == ["class 1", "salt"]
    np.testing.assert_allclose(knn.scale, 2 * np.asarray(cube.geometry.spacing))
    # the headless twin: `seisfm segment` on the same labels gives the same classes
    labels = tmp_path / "labels.npy"
    np.save(labels, np.asarray(training.data))
    out = tmp_path / "classes.npy"
    assert cli.main(["segment", str(store), "--labels", str(labels), "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), knn.data)


def test_knn_in_3d_view_and_cancel(make_napari_viewer, qtbot, two_cluster):
    cube, store = two_cluster
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    viewer.dims.ndisplay = 3
    # labels painted on the cube grid work too
    labels = viewer.add_labels(
        np.zeros(cube.shape, np.int32),
        name="cube labels",
        **{k: v for k, v in cube_layer(cube)[1].items() if k in ("scale", "translate")},
    )
    labels.data[4, 4, 0:6] = 1  # three grid points per class, so k=5 has a majority
    labels.data[20, 20, 24:30] = 2
    widget.segmentation.training.setCurrentText("cube labels")
    assert widget.visible_region() is None  # 3D: the whole cube at once
    widget.segmentation.run_knn()
    qtbot.waitUntil(lambda: widget.segmentation.knn_result is not None and widget.segmentation.jobs.worker is None, timeout=WAIT)
    assert set(np.unique(viewer.layers[KNN].data)) == {1, 2}
    assert viewer.screenshot(canvas_only=True).std() > 1
    # cancel: the engine stops between batches and reports it
    seg = KnnSegmenter(widget.features, *_support(labels.data, widget))
    from napari_seisfm.errors import SeisfmCancelled

    with pytest.raises(SeisfmCancelled):
        seg.segment(batch=64, cancel=lambda: True)


def _support(data, widget):
    from napari_seisfm.search import support_from_labels

    return support_from_labels(np.asarray(data), widget.features.grid, cube_shape=widget.features.cube_shape())


def test_export_round_trip(make_napari_viewer, qtbot, survey_store, tmp_path, errors):
    import segyio

    sgy, store, _ = survey_store
    cube = open_cube(sgy)
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    g = cube.geometry
    widget.files.export(SIMILARITY, tmp_path / "none.sgy")
    assert "no similarity map yet" in errors["error"].pop()
    viewer.layers[POSITIVE].add([g.ilines[20], g.xlines[30], g.samples[30]])
    _wait_map(qtbot, widget, 1)
    out = tmp_path / "similarity.sgy"
    assert widget.files.export(SIMILARITY, out)  # the dock's job: progress and Cancel
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=WAIT)
    assert not errors["error"] and str(out) in widget.status.text_plain()
    back = open_cube(out)
    assert back.shape == cube.shape
    with segyio.open(sgy, ignore_geometry=True) as a, segyio.open(out, ignore_geometry=True) as b:
        assert a.tracecount == b.tracecount
        for field in (
            segyio.TraceField.INLINE_3D,
            segyio.TraceField.CROSSLINE_3D,
            segyio.TraceField.CDP_X,
            segyio.TraceField.CDP_Y,
        ):
            np.testing.assert_array_equal(a.attributes(field)[:], b.attributes(field)[:])
        np.testing.assert_array_equal(a.samples, b.samples)
    # values at grid points are the map's values (interpolation only between them)
    full = back[:]
    np.testing.assert_allclose(full[::2, ::2, ::2], widget.result.score, atol=1e-6)
    npy = tmp_path / "similarity.npy"
    assert widget.files.export(SIMILARITY, npy)
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=WAIT)
    assert np.load(npy).shape == cube.shape
    # Cancel during the export: nothing is left at the path, the partial file is gone
    stopped = tmp_path / "stopped.sgy"
    widget.jobs.report = lambda *a: widget.jobs.cancel()  # Cancel pressed at the first progress report
    assert widget.files.export(SIMILARITY, stopped)
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=WAIT)
    assert not stopped.exists() and not list(tmp_path.glob("stopped*"))


def test_save_and_open_interpretation(make_napari_viewer, qtbot, survey_store, tmp_path, errors):
    sgy, store, _ = survey_store
    cube = open_cube(sgy)
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    g = cube.geometry
    viewer.layers[POSITIVE].add([g.ilines[20], g.xlines[30], g.samples[30]])
    viewer.layers[POSITIVE].add([g.ilines[22], g.xlines[30], g.samples[30]])
    viewer.layers[NEGATIVE].add([g.ilines[4], g.xlines[4], g.samples[40]])
    _wait_map(qtbot, widget, 2, 1)
    training = widget.segmentation.new_training_labels()
    training.data[1, 2, 3] = 1
    training.data[10, 11, 12] = 2
    widget.segmentation.k.value = 7
    widget.segmentation.weighted.value = True
    widget.set_threshold(0.42)
    path = widget.files.save_interpretation(tmp_path / "work.json")
    saved_map = widget.result.score.copy()
    assert path.exists() and (tmp_path / "work.labels.npz").exists()

    viewer2, widget2 = _widget(make_napari_viewer, qtbot, cube, store)
    widget2.files.open_interpretation(path)
    np.testing.assert_allclose(viewer2.layers[POSITIVE].data, viewer.layers[POSITIVE].data)
    np.testing.assert_allclose(viewer2.layers[NEGATIVE].data, viewer.layers[NEGATIVE].data)
    _wait_map(qtbot, widget2, 2, 1)
    np.testing.assert_array_equal(widget2.result.score, saved_map)
    restored = viewer2.layers[widget2.segmentation.training.currentText()]
    np.testing.assert_array_equal(restored.data, training.data)
    np.testing.assert_allclose(restored.scale, training.scale)
    assert widget2.segmentation.k.value == 7 and widget2.segmentation.weighted.value
    assert widget2.threshold_value() == pytest.approx(0.42)
    # opened again, here and in the viewer it was saved from: the labels go into the same layer, no "[1]" copy
    for v, w in ((viewer2, widget2), (viewer, widget)):
        w.files.open_interpretation(path)
        assert [ly.name for ly in v.layers if ly.name.startswith("training labels")] == ["training labels"]
    # the CLI twin: `seisfm search` with the same clicks gives the same map
    out = tmp_path / "map.npy"
    args = ["search", str(store), "--out", str(out), "--top", "0"]
    for flag, layer in (("--pos", POSITIVE), ("--neg", NEGATIVE)):
        for p in viewer.layers[layer].data:
            args += [flag, ",".join(f"{v:g}" for v in p)]
    assert cli.main(args) == 0
    np.testing.assert_array_equal(np.load(out), saved_map)


def test_clear_removes_map(make_napari_viewer, qtbot, survey_store):
    sgy, store, _ = survey_store
    viewer, widget = _widget(make_napari_viewer, qtbot, open_cube(sgy), store)
    g = open_cube(sgy).geometry
    viewer.layers[POSITIVE].add([g.ilines[20], g.xlines[30], g.samples[30]])
    _wait_map(qtbot, widget, 1)
    widget.clear()
    qtbot.waitUntil(lambda: SIMILARITY not in viewer.layers, timeout=WAIT)
    assert len(viewer.layers[POSITIVE].data) == 0 and widget.result is None
    assert "No positive click yet" in widget.status.text_plain()


def test_decision_and_method_choices_match_the_engine_and_round_trip(make_napari_viewer, qtbot, survey_store, tmp_path):
    sgy, store, _ = survey_store
    cube = open_cube(sgy)
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    g = cube.geometry
    viewer.layers[POSITIVE].add([g.ilines[20], g.xlines[30], g.samples[30]])
    _wait_map(qtbot, widget, 1)
    widget.decision.value = "centroid"
    qtbot.waitUntil(
        lambda: (
            widget.result is not None
            and widget.result.snapshot.decision == "centroid"
            and not widget.map_running
            and widget.result is not None
            and widget.session.is_current(widget.result)
        ),
        timeout=WAIT,
    )
    qtbot.waitUntil(lambda: widget.result.score.min() < 0, timeout=WAIT)  # a cosine map, not a probability
    ref = CentroidSearch(widget.features)
    ref.set_clicks(widget.session.grid_positives)
    np.testing.assert_array_equal(widget.result.score, ref.score_map())
    assert widget.threshold_value() == pytest.approx(np.floor(ref.default_threshold() * 100) / 100)
    # segmentation by kNN from the dock equals the engine's kNN
    training = widget.segmentation.new_training_labels()
    training.data[10, 10, 2:6] = 1
    training.data[10, 10, 18:22] = 2
    training.refresh()
    widget.segmentation.method.value = "knn"
    assert widget.segmentation.k.enabled and not widget.segmentation.smooth.enabled
    widget.segmentation.run_knn()
    qtbot.waitUntil(lambda: widget.segmentation.knn_result is not None and widget.segmentation.jobs.worker is None, timeout=WAIT)
    pts, cls = _support(training.data, widget)
    np.testing.assert_array_equal(viewer.layers[KNN].data, KnnSegmenter(widget.features, pts, cls, k=5).segment().classes)
    # the choices are part of the saved interpretation
    path = widget.files.save_interpretation(tmp_path / "choices.json")
    viewer2, widget2 = _widget(make_napari_viewer, qtbot, cube, store)
    widget2.files.open_interpretation(path)
    assert widget2.decision.value == "centroid" and widget2.segmentation.method.value == "knn"
    assert widget2.connected.value
    _wait_map(qtbot, widget2, 1)  # the restored clicks' map lands before the viewer closes
    np.testing.assert_array_equal(widget2.result.score, ref.score_map())


def test_facies_button_runs_kmeans_into_a_labels_layer(make_napari_viewer, qtbot, two_cluster):
    from napari_seisfm.plugin.widgets._segmentation import FACIES
    from napari_seisfm.search import adjusted_rand_index, kmeans_facies

    cube, store = two_cluster
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    widget.segmentation.n_facies.value = 2
    widget.segmentation.run_facies()
    qtbot.waitUntil(
        lambda: widget.segmentation.facies_result is not None and widget.segmentation.jobs.worker is None, timeout=WAIT
    )
    layer = viewer.layers[FACIES]
    np.testing.assert_array_equal(layer.data, kmeans_facies(widget.features, 2).classes)
    upper = (np.arange(16) < 8)[None, None, :] * np.ones((16, 16, 1), bool)
    assert adjusted_rand_index(layer.data.ravel(), upper.ravel()) == 1.0  # the two clusters, found without labels
    np.testing.assert_allclose(layer.scale, 2 * np.asarray(cube.geometry.spacing))
    assert widget.segmentation.facies_button.isEnabled() and widget.segmentation.knn_button.isEnabled()
    assert FACIES not in [widget.segmentation.training.itemText(i) for i in range(widget.segmentation.training.count())]


def test_docks_scroll_instead_of_demanding_a_tall_window(make_napari_viewer):
    from qtpy.QtWidgets import QScrollArea

    from napari_seisfm.plugin.widgets.extract import ExtractWidget

    viewer = make_napari_viewer()
    for widget in (ClickToMapWidget(viewer), ExtractWidget(viewer)):
        inner = widget.findChild(QScrollArea).widget()
        assert inner.sizeHint().height() > widget.minimumSizeHint().height()  # what does not fit, scrolls
        assert widget.minimumSizeHint().height() < 300
        assert widget.minimumSizeHint().width() >= inner.minimumSizeHint().width()  # but nothing is cut off


def test_threshold_slider_updates_the_mask_once_it_rests(make_napari_viewer, qtbot, survey_store):
    sgy, store, _ = survey_store
    viewer, widget = _widget(make_napari_viewer, qtbot, open_cube(sgy), store)
    g = open_cube(sgy).geometry
    viewer.layers[POSITIVE].add([g.ilines[20], g.xlines[30], g.samples[30]])
    _wait_map(qtbot, widget, 1)
    widget.connected.value = False
    for v in (10, 20, 30, 40):  # a drag: many values in quick succession
        widget.threshold.setValue(v)
    assert widget.threshold_label.text() == "threshold 0.40"
    expect = (widget.result.score >= 0.40).astype(np.uint8)
    qtbot.waitUntil(lambda: np.array_equal(viewer.layers[THRESHOLDED].data, expect), timeout=WAIT)


def test_closing_the_viewer_during_segmentation_stops_the_job_quietly(make_napari_viewer, qtbot, two_cluster, errors):
    cube, store = two_cluster
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    training = widget.segmentation.new_training_labels()
    training.data[3, 3:6, 2] = 1
    training.data[12, 8:11, 12] = 2
    viewer.dims.ndisplay = 3  # the whole grid in one go
    widget.segmentation.run_knn()
    assert (
        widget.segmentation.jobs.running
        and not widget.segmentation.knn_button.isEnabled()
        and widget.segmentation.cancel_button.isEnabled()
    )
    viewer.close()
    assert widget.segmentation.jobs.closed and widget.segmentation.jobs.done_event.wait(
        10
    )  # cancelled (or finished) and waited for
    qtbot.wait(100)
    assert not errors["error"]


def test_big_grids_show_the_section_on_screen_first(make_napari_viewer, qtbot, survey_store, monkeypatch):
    monkeypatch.setattr(ctm, "PREVIEW_POINTS", 0)  # treat the test grid as big
    sgy, store, _ = survey_store
    cube = open_cube(sgy)
    viewer, widget = _widget(make_napari_viewer, qtbot, cube, store)
    g = cube.geometry
    viewer.dims.set_point(0, g.ilines[20])  # the inline on screen: grid inline 10
    previews = []
    show = widget._show_preview
    monkeypatch.setattr(widget, "_show_preview", lambda item: (previews.append(item), show(item)))
    viewer.layers[POSITIVE].add([g.ilines[20], g.xlines[31], g.samples[30]])
    _wait_map(qtbot, widget, 1)
    ((preview, shown),) = previews
    assert preview.region == (slice(10, 11), slice(0, 24), slice(0, 24))
    assert np.isnan(shown[:10]).all() and np.isnan(shown[11:]).all()  # no map before: only the section
    bound = widget.session._search.query_error()  # the whole map's int8 query rounding; the preview is exact float
    np.testing.assert_allclose(preview.score, widget.result.score[preview.region], atol=bound + 1e-5)
    np.testing.assert_array_equal(viewer.layers[SIMILARITY].data, widget.result.score)  # then the whole map


def test_a_map_that_lands_after_the_viewer_closed_touches_nothing(make_napari_viewer, qtbot, survey_store):
    sgy, store, _ = survey_store
    viewer, widget = _widget(make_napari_viewer, qtbot, open_cube(sgy), store)
    g = open_cube(sgy).geometry
    viewer.layers[POSITIVE].add([g.ilines[20], g.xlines[30], g.samples[30]])
    qtbot.waitUntil(lambda: widget.map_running, timeout=WAIT)
    viewer.close()  # while the map is computed
    qtbot.waitUntil(lambda: not widget.map_running, timeout=WAIT)
    qtbot.wait(200)  # any exception in a late callback fails the test (pytest-qt)
    assert widget.maps.closed and SIMILARITY not in viewer.layers
