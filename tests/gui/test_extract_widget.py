"""The "Extract embeddings" widget and the feature-store reader in a real napari viewer (run under xvfb-run)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import refused_with

from napari_seisfm.cube import Cube, Geometry
from napari_seisfm.display import cube_layer
from napari_seisfm.errors import SeisfmError
from napari_seisfm.extract import extract_features
from napari_seisfm.plugin.features_reader import check_viewer_cubes, get_features_reader
from napari_seisfm.store.volume import FeatureVolume
from napari_seisfm.synthetic import make_survey

pytestmark = pytest.mark.gui


@pytest.fixture
def npy_cube(tmp_path):
    path = tmp_path / "survey.npy"
    np.save(path, make_survey((32, 32, 48), seed=7).amplitude)
    return path


def test_widget_extracts_and_loads_feature_layer(make_napari_viewer, qtbot, npy_cube, tmp_path):
    from napari_seisfm.io import open_cube
    from napari_seisfm.plugin.widgets.extract import ExtractWidget

    viewer = make_napari_viewer()
    data, kwargs, _ = cube_layer(open_cube(npy_cube))
    viewer.add_image(data, **kwargs)
    widget = ExtractWidget(viewer)
    assert widget.cube.value.name == "survey"
    assert widget.out.line_edit.native.placeholderText().endswith("survey_attributes_s4-4-4.zarr")  # where it goes
    assert "attributes" in widget.model.choices
    out = tmp_path / "w.zarr"
    widget.out.value = str(out)
    widget.stride.value = "4,4,2"
    widget.dtype.value = "f16"
    widget.run_button.click()
    assert widget.jobs.worker is not None and not widget.run_button.isEnabled()
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=60_000)
    assert widget.result is not None and widget.result.complete
    assert widget.progress.value() == widget.progress.maximum()
    fv = FeatureVolume.open(out)
    assert fv.grid.shape == (8, 8, 24) and fv.dtype == "float16"
    layer = viewer.layers[-1]
    assert layer.rgb and layer.data.shape == (8, 8, 24, 3)
    assert layer.metadata["path"] == str(out)
    assert not layer.visible and layer.opacity < 1  # the seismic stays in view
    spacing = np.asarray(open_cube(npy_cube).geometry.spacing)
    np.testing.assert_allclose(layer.scale, np.array([4, 4, 2]) * spacing)
    assert widget.run_button.isEnabled()
    assert str(out) in widget.status.text_plain() and "Click-to-map" in widget.status.text_plain()  # where and what next
    # a second run into the same store replaces the layer, no "[1]" copies
    n = len(viewer.layers)
    widget.overwrite.value = True
    widget.run_button.click()
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=60_000)
    assert len(viewer.layers) == n and viewer.layers[-1].name == layer.name


def test_widget_in_memory_layer_default_output_and_errors(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_seisfm.plugin.widgets import extract as w

    monkeypatch.setattr(w.tempfile, "gettempdir", lambda: str(tmp_path))
    errors = []
    from napari_seisfm.plugin.widgets import _notify

    monkeypatch.setattr(_notify, "show_error", errors.append)
    viewer = make_napari_viewer()
    widget = w.ExtractWidget(viewer)
    widget.run()  # no cube yet
    assert errors and "no cube selected" in errors[-1]
    viewer.add_image(make_survey((32, 32, 48), seed=1).amplitude, name="mem", metadata={"kind": "seismic"})
    assert widget.cube.value.name == "mem"  # the picker follows the layer list
    widget.stride.value = "4,x"
    widget.run()
    assert (
        errors[-1].startswith("stride '4,x'") and "--" not in errors[-1] and widget.jobs.worker is None
    )  # the dock's word, not the CLI's
    widget.stride.value = "8"
    widget.run()
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=60_000)
    assert (tmp_path / "mem_attributes_s8-8-8.zarr").is_dir()
    assert widget.result.grid.shape == (4, 4, 6)
    # running again without overwrite resumes the complete store (no error); a stride change is refused
    widget.stride.value = "4"
    widget.out.value = str(tmp_path / "mem_attributes_s8-8-8.zarr")
    n_errors = len(errors)
    widget.run()
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=60_000)
    assert len(errors) == n_errors + 1 and "other settings" in errors[-1]


def test_widget_cancel_leaves_resumable_store(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_seisfm.plugin.widgets import extract as w

    infos = []
    monkeypatch.setattr("napari.utils.notifications.show_info", infos.append)
    viewer = make_napari_viewer()
    viewer.add_image(make_survey((32, 32, 48), seed=1).amplitude, name="mem", metadata={"kind": "seismic"})
    widget = w.ExtractWidget(viewer)
    widget.out.value = str(tmp_path / "c.zarr")
    report = widget.jobs.report  # the worker's progress callback: Cancel pressed at the first report

    def cancel_at_first_report(done, total):
        report(done, total)
        widget.cancel()

    widget.jobs.report = cancel_at_first_report
    widget.run()
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=60_000)
    assert infos and "resume" in infos[-1] and "Press Run to continue" in widget.status.text_plain()
    # stopped inside the cube's one chunk, while fitting the PCA basis: no store yet; Run again finishes it
    assert "0 of 1 sample chunks kept" in infos[-1] and not (tmp_path / "c.zarr").exists()
    assert len(viewer.layers) == 1
    widget.jobs.report = report
    widget.run()
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=60_000)
    assert FeatureVolume.open(tmp_path / "c.zarr").complete and not (tmp_path / "c.zarr.pca-fit").exists()


def test_closing_the_viewer_stops_the_extraction(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Issue 10 #6: the job is cancelled and waited for, nothing raises or logs, the store is left
    incomplete and a headless resume completes it."""
    import logging
    import sys
    import threading

    from napari_seisfm.plugin.widgets.extract import ExtractWidget

    caught = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: caught.append(exc))
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args))
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        viewer = make_napari_viewer()
        cube = make_survey((64, 64, 64), seed=3).amplitude  # 8 chunks of the micro ViT, many batches each
        viewer.add_image(cube, name="mem", metadata={"kind": "seismic"})
        widget = ExtractWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Extract embeddings")
        widget.model.value = "seisfm-micro-2.5d"
        widget.batch_size.value = 2
        widget.pca.value = 0  # the store is created at once (no basis to fit first)
        out = tmp_path / "v.zarr"
        widget.out.value = str(out)
        widget.run()
        jobs = widget.jobs
        done = jobs.done_event
        qtbot.waitUntil(lambda: widget.progress.maximum() > 0, timeout=60_000)  # the first report is shown
        assert not done.is_set()
        viewer.close()
        assert done.wait(30), "the extraction kept going after the viewer closed"
        assert jobs.closed
        qtbot.wait(300)  # let the worker's queued signals arrive: they must touch nothing
    finally:
        logging.getLogger().removeHandler(handler)
    assert not caught, caught
    assert not [r for r in records if r.levelno >= logging.ERROR or "deleted" in r.getMessage()], records
    partial = FeatureVolume.open(out, allow_partial=True)
    assert not partial.complete and partial.progress()[0] < partial.progress()[1]
    fv = extract_features(Cube.from_array(cube), out, model="seisfm-micro-2.5d", pca=0, device="cpu")
    assert fv.complete


def test_reader_refuses_store_of_another_cube(make_napari_viewer, qtbot, tmp_path, reader_messages):
    s = make_survey((32, 32, 48), seed=2)
    cube = Cube.from_array(s.amplitude, Geometry.regular(s.amplitude.shape, first_inline=100, source="a"))
    out = tmp_path / "f.zarr"
    fv = extract_features(cube, out, stride=8)
    viewer = make_napari_viewer()
    # the matching cube in the viewer: the store opens, aligned with it
    data, kwargs, _ = cube_layer(cube, name="a")
    viewer.add_image(data, **kwargs)
    layers = viewer.open(str(out), plugin="napari-seisfm")
    assert layers[-1].rgb and layers[-1].metadata["feature_volume"]["model"] == "attributes"
    qtbot.waitUntil(lambda: "loading" not in layers[-1].metadata, timeout=60_000)  # coloured off the GUI thread
    assert layers[-1].data.shape == (*fv.grid.shape, 3) and not layers[-1].visible  # the seismic stays in view
    np.testing.assert_allclose(layers[-1].translate, viewer.layers["a"].translate)
    # only a different cube in the viewer: refused with a clear message
    viewer.layers.clear()
    other = Cube.from_array(s.amplitude, Geometry.regular(s.amplitude.shape, first_inline=500, source="b"))
    data, kwargs, _ = cube_layer(other, name="b")
    viewer.add_image(data, **kwargs)
    with pytest.raises(SeisfmError, match=r"extracted from another cube \(a, shape \[32, 32, 48\]\).*'b'"):
        check_viewer_cubes(fv, viewer)
    assert "extracted from another cube" in refused_with(get_features_reader(str(out)), out, reader_messages)
    assert viewer.open(str(out), plugin="napari-seisfm") == []  # our one message, no second one from napari
    assert len(viewer.layers) == 1


def test_reader_declines_partial_store(make_napari_viewer, tmp_path, reader_messages):
    cube = Cube.from_array(make_survey((32, 32, 48), seed=2).amplitude)
    out = tmp_path / "p.zarr"
    with pytest.raises(SeisfmError):
        extract_features(cube, out, chunks=(2, 2, 2), cancel=lambda: True, pca=0)  # created, nothing embedded
    make_napari_viewer()
    assert "incomplete" in refused_with(get_features_reader(str(out)), out, reader_messages)
