"""The "Codec comparison" dock widget in a real napari viewer (run under xvfb-run)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seisfm.codecs.table import COLUMNS
from napari_seisfm.plugin.widgets._dock import select

pytest.importorskip("napari")
pytestmark = pytest.mark.gui


def cube_data(ni=3, nx=64, nt=96, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(nt)
    base = np.sin(2 * np.pi * t / 12.0)[None, None, :] * np.linspace(1, 2, nx)[None, :, None]
    return (base + 0.1 * rng.standard_normal((ni, nx, nt))).astype(np.float32)


def add_cube(viewer, data, **kw):
    meta = {"kind": "seismic", "geometry": {"sample_unit": "ms", "samples": [0.0, 4.0 * (data.shape[-1] - 1), 4.0]}}
    return viewer.add_image(data, name="cube", scale=(1, 1, 4.0), translate=(100, 200, 0), metadata=meta, **kw)


def run_and_wait(qtbot, widget):
    widget.run()
    assert widget.jobs.worker is not None
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=60000)


@pytest.fixture
def widget(make_napari_viewer):
    from napari_seisfm.plugin.widgets.codecs import CodecWidget

    viewer = make_napari_viewer()
    w = CodecWidget(viewer)
    viewer.window.add_dock_widget(w)
    return viewer, w


def test_runs_on_the_current_inline_and_adds_placed_layers(widget, qtbot):
    viewer, w = widget
    data = cube_data()
    layer = add_cube(viewer, data)
    viewer.dims.order = (0, 2, 1)  # inline slider, time down the screen
    viewer.dims.set_point(0, 101)  # inline 101 = index 1
    assert w.layer.value.name == "cube" and w.sample_interval.value == 4.0
    w.codecs.value = "quant4,quant8,zstd,zfp-rate4,ans"
    run_and_wait(qtbot, w)
    comp, placement = w.result
    assert placement["axis"] == 0 and placement["index"] == 1
    np.testing.assert_allclose(comp.prepared.to_input_units(comp.input), data[1], rtol=1e-4, atol=1e-4)
    # table: every row, the paper's columns, sortable
    assert w.table.rowCount() == 5 and w.table.columnCount() == len(COLUMNS)
    assert w.table.isSortingEnabled()
    # it opens in the comparison's order, not sorted by name in reverse
    assert [w.table.item(i, 0).text() for i in range(5)] == [r.method for r in comp.rows]
    snr_col = [h for h, _, _ in COLUMNS].index("SNR")
    w.table.sortItems(snr_col)
    names = [w.table.item(i, 0).text() for i in range(5)]
    keys = [w.table.item(i, snr_col).key for i in range(5)]
    assert keys[:4] == sorted(keys[:4]) and names[0] == "quant4" and names[3] == "zstd"  # inf after finite
    assert names[4] == "ans" and np.isnan(keys[4])  # unavailable (nan) last
    # layers on the slice they came from, same scale as the source
    rec = viewer.layers["cube codec reconstruction"]
    res = viewer.layers["cube codec residual"]
    assert rec.data.shape == (1, 64, 96) and tuple(rec.scale) == tuple(layer.scale)
    assert tuple(rec.translate) == (101.0, 200.0, 0.0) and tuple(res.translate) == (101.0, 200.0, 0.0)
    assert rec.metadata["codec"] == "quant4"  # the first lossy row is shown
    np.testing.assert_allclose(rec.data[0] + res.data[0], data[1], atol=1e-3)
    # selecting another row swaps the layers' content, no new layers
    n_layers = len(viewer.layers)
    row = names.index("zstd")
    w.table.selectRow(row)
    assert viewer.layers["cube codec reconstruction"].metadata["codec"] == "zstd"
    np.testing.assert_allclose(viewer.layers["cube codec reconstruction"].data[0], data[1], atol=1e-4)
    assert len(viewer.layers) == n_layers
    # the figure in the dock has the three panels
    assert len(w.figure.axes) == 3 and w.figure.axes[0].get_title() == "Average power spectra"
    assert not w.canvas.pixmap().isNull()  # drawn off the GUI thread, shown as a picture
    assert w.figure.get_size_inches()[0] * 100 >= 480  # drawn for the room of a wide dock, shrunk to fit a small one
    # table and figure live in a wide dock of their own below the canvas (readable at 1080p)
    from qtpy.QtCore import Qt

    window = viewer.window._qt_window
    assert window.dockWidgetArea(w._results_dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert w._results_dock.widget().findChild(type(w.table)) is w.table


def test_time_slice_and_2d_layer(widget, qtbot):
    viewer, w = widget
    add_cube(viewer, cube_data(ni=64, nx=64, nt=40))
    viewer.dims.order = (2, 0, 1)  # time slider
    viewer.dims.set_point(2, 20.0)  # 20 ms = index 5
    w.codecs.value = "quant8"
    run_and_wait(qtbot, w)
    comp, placement = w.result
    assert placement["axis"] == 2 and placement["index"] == 5
    assert comp.prepared.sample_interval_ms is None  # no time axis in a time slice
    assert viewer.layers["cube codec reconstruction"].data.shape == (64, 64, 1)
    assert viewer.layers["cube codec reconstruction"].translate[2] == 20.0

    viewer.add_image(cube_data()[0], name="line")
    select(w.layer, "line")
    run_and_wait(qtbot, w)
    assert w.result[1]["axis"] is None and viewer.layers["line codec reconstruction"].data.shape == (64, 96)


def test_visible_part(widget, qtbot):
    viewer, w = widget
    layer = add_cube(viewer, cube_data(ni=2, nx=128, nt=128))
    viewer.dims.order = (0, 1, 2)
    layer.corner_pixels = np.array([[0, 32, 32], [1, 95, 95]])  # what napari sets from the camera
    w.region.value = w.region.choices[1]
    section, placement = w.current_section()
    assert section.shape == (64, 64) and placement["offset"] == (32, 32)


def test_errors_are_notifications(widget, qtbot, monkeypatch):

    viewer, w = widget
    shown = []
    from napari_seisfm.plugin.widgets import _notify

    monkeypatch.setattr(_notify, "show_error", shown.append)
    w.run()  # no layer
    assert shown and "no image layer" in shown[-1]
    data = cube_data()
    data[0, 3, 5] = np.nan
    add_cube(viewer, data)
    viewer.dims.set_point(0, 100)
    w.codecs.value = "quant8"
    run_and_wait(qtbot, w)
    assert "1 NaN" in shown[-1]
    w.codecs.value = "zip9"
    run_and_wait(qtbot, w)
    assert "unknown codec 'zip9'" in shown[-1]
    w.codecs.value = "cosmos-CI8x8"
    run_and_wait(qtbot, w)
    assert "not installed" in shown[-1] and w.result is None


def test_cancel(widget, qtbot, monkeypatch):
    from napari.utils import notifications

    viewer, w = widget
    infos = []
    monkeypatch.setattr(notifications, "show_info", infos.append)
    add_cube(viewer, cube_data(nx=512, nt=512))
    w.codecs.value = "default"
    report = w.jobs.report  # the worker's progress callback: cancel once the first codec is done

    def cancel_after_first(done, total, name):
        report(done, total, name)
        if done == 1:
            w.cancel()

    w.jobs.report = cancel_after_first
    run_and_wait(qtbot, w)
    assert w.result is None and infos and "stopped after" in infos[-1]
