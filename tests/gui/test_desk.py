"""The desk in a real napari window (issue 21): exaggeration per survey, a view that stays fitted, clicks
seen across slices, docks that fit 1080p as tabs, and a process that exits cleanly when the window closes
mid-job. Run under `xvfb-run -a`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_seisfm.cube import Geometry
from napari_seisfm.extract import extract_features
from napari_seisfm.io.segy import write_segy
from napari_seisfm.plugin import view
from napari_seisfm.synthetic import make_survey

pytestmark = pytest.mark.gui
WAIT = 60_000


@pytest.fixture
def two_surveys(tmp_path):
    """A short, wide survey (2 ms, 96 traces) and a long, narrow one (4 ms, 32 traces): different defaults."""
    a = make_survey((32, 96, 48), seed=1).amplitude
    b = make_survey((32, 32, 160), seed=2).amplitude
    pa = write_segy(tmp_path / "wide.sgy", a, Geometry.regular(a.shape, first_inline=100, sample_interval=2.0))
    pb = write_segy(tmp_path / "long.sgy", b, Geometry.regular(b.shape, first_inline=500, sample_interval=4.0))
    return pa, pb


def test_exaggeration_belongs_to_each_survey(make_napari_viewer, two_surveys):
    viewer = make_napari_viewer()
    wide = viewer.open(str(two_surveys[0]), plugin="napari-seisfm")[0]
    ve_wide = view.exaggeration(viewer, view.survey_of(wide))
    long_ = viewer.open(str(two_surveys[1]), plugin="napari-seisfm")[0]
    ve_long = view.exaggeration(viewer, view.survey_of(long_))
    # each survey got the default that fills the canvas with its own inline section
    aspect = view.canvas_aspect(viewer)
    assert ve_wide == pytest.approx(float(f"{96 / (96 * aspect):.2g}"))
    assert ve_long == pytest.approx(float(f"{32 / (640 * aspect):.2g}"))
    assert ve_long < ve_wide / 5  # not the first survey's factor (a strip)
    assert wide.scale[2] == pytest.approx(2 * ve_wide) and long_.scale[2] == pytest.approx(4 * ve_long)
    # changing one survey's factor leaves the other's layers alone
    view.set_exaggeration(viewer, 2 * ve_long, view.survey_of(long_))
    assert long_.scale[2] == pytest.approx(8 * ve_long) and wide.scale[2] == pytest.approx(2 * ve_wide)
    # Fit (the menu entry, the Shift-F key): the default again for the active survey, the view reset
    viewer.layers.selection.active = long_
    view.fit_view(viewer)
    assert view.exaggeration(viewer, view.survey_of(long_)) == pytest.approx(ve_long)
    assert "Shift+F" in {str(k) for k in viewer.keymap}


def test_the_view_refits_when_a_dock_narrows_the_canvas(make_napari_viewer, qtbot, two_surveys):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 900)
    qtbot.wait(200)
    layer = viewer.open(str(two_surveys[0]), plugin="napari-seisfm")[0]
    qtbot.wait(200)
    view.fit(viewer)
    zoom = view.camera(viewer).zoom
    from napari_seisfm.plugin.widgets.extract import ExtractWidget

    viewer.window.add_dock_widget(ExtractWidget(viewer), name="Extract embeddings", area="right")
    qtbot.waitUntil(lambda: view.camera(viewer).zoom < zoom * 0.98, timeout=5000)  # refit to the narrower canvas
    # the whole section is in view: its world box fits the canvas
    h, w = viewer.canvas.size
    box = np.asarray(layer.extent.world)[:, [2, 1]]
    assert (box[1] - box[0]).max() * view.camera(viewer).zoom <= max(h, w) + 1
    # a view the user moved is left alone
    view.camera(viewer).zoom = view.camera(viewer).zoom * 3
    moved = view.camera(viewer).zoom
    viewer.window._qt_window.resize(1400, 900)
    qtbot.wait(300)
    assert view.camera(viewer).zoom == pytest.approx(moved)


def test_clicks_show_on_every_slice_where_they_count(make_napari_viewer, qtbot, tmp_path):
    from napari_seisfm.io import open_cube
    from napari_seisfm.plugin.widgets.click_to_map import POSITIVE, ClickToMapWidget

    a = make_survey((32, 32, 32), seed=3).amplitude
    sgy = write_segy(tmp_path / "c.sgy", a, Geometry.regular(a.shape, first_inline=10))
    extract_features(open_cube(sgy), tmp_path / "f.zarr", stride=4)
    viewer = make_napari_viewer()
    viewer.open(str(sgy), plugin="napari-seisfm")
    widget = ClickToMapWidget(viewer)
    widget.load_features(str(tmp_path / "f.zarr"))
    qtbot.waitUntil(lambda: widget.session is not None, timeout=WAIT)
    pos = viewer.layers[POSITIVE]
    assert pos.projection_mode == "rescale_linear"  # napari's current API, not out_of_slice_display
    click = [26, 20, 40.0]  # inline 26 snaps to grid inline 24 (stride 4): it counts on inlines 22..26
    viewer.dims.set_point(0, 26)
    pos.add(pos.world_to_data(view.to_world(viewer, click)))
    qtbot.waitUntil(lambda: bool(widget.session.positives), timeout=WAIT)

    def drawn_at(inline):
        viewer.dims.set_point(0, inline)
        return pos._view_size[pos._view_size > 0]  # sizes of the points napari draws on this slice

    on = drawn_at(26)
    assert len(on) == 1 and pos.face_color[0, 3] == 1
    near = drawn_at(25)  # one inline away: drawn, smaller and fainter
    assert len(near) == 1 and 0 < near[0] < on[0] and pos.face_color[0, 3] < 1
    assert len(drawn_at(24)) == 1  # two inlines away, still where it counts
    assert len(drawn_at(29)) == 0  # beyond its reach: not drawn


def test_plugin_docks_open_as_tabs_and_fit_1080p(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QDockWidget

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1920, 1080)
    viewer.add_image(make_survey((32, 32, 32), seed=1).amplitude, name="mem", metadata={"kind": "seismic"})
    names = ["Extract embeddings", "Click-to-map", "Codec comparison", "Pretrain on this survey", "Velocity <-> seismic"]
    for name in names:
        viewer.window.add_plugin_dock_widget("napari-seisfm", name)
    qtbot.wait(300)
    docks = [d for d in window.findChildren(QDockWidget) if any(n in d.windowTitle() for n in names)]
    assert len(docks) == 5
    assert all(window.tabifiedDockWidgets(d) for d in docks)  # one tab group, full height each
    assert window.minimumSizeHint().height() <= 1000 and window.height() <= 1080  # never grows past the screen


def test_closing_the_last_window_mid_extraction_exits_cleanly(tmp_path):
    """The whole process: a window with an extraction running is closed; napari.run() returns, the script
    ends, and Python exits with code 0 and no traceback (the job was cancelled and waited for)."""
    script = tmp_path / "desk.py"
    script.write_text(
        textwrap.dedent(f"""
        import napari
        from qtpy.QtCore import QTimer
        from napari_seisfm.synthetic import make_survey
        from napari_seisfm.plugin.widgets.extract import ExtractWidget

        viewer = napari.Viewer()
        viewer.add_image(make_survey((96, 96, 96), seed=1).amplitude, name="mem", metadata={{"kind": "seismic"}})
        widget = ExtractWidget(viewer)
        viewer.window.add_dock_widget(widget)
        widget.out.value = r"{tmp_path / "x.zarr"}"
        widget.stride.value = "2"
        widget.run()

        def close_when_running():
            if widget.jobs._latest is None:  # wait for the first progress report: mid-chunk
                QTimer.singleShot(50, close_when_running)
                return
            print("closing", flush=True)
            viewer.window._qt_window.close()

        QTimer.singleShot(50, close_when_running)
        napari.run()
        print("returned", flush=True)
    """)
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "closing" in run.stdout and "returned" in run.stdout
    assert "Traceback" not in run.stderr and "Error" not in run.stderr, run.stderr[-3000:]


def test_a_new_store_goes_to_the_open_click_to_map_dock(make_napari_viewer, qtbot, tmp_path):
    """Extraction ends: the Click-to-map dock on the same cube loads the store by itself, and the status line
    says where the store went."""
    a = make_survey((32, 32, 32), seed=4).amplitude
    sgy = write_segy(tmp_path / "c.sgy", a, Geometry.regular(a.shape))
    viewer = make_napari_viewer()
    viewer.open(str(sgy), plugin="napari-seisfm")
    _, ex = viewer.window.add_plugin_dock_widget("napari-seisfm", "Extract embeddings")
    _, ctm = viewer.window.add_plugin_dock_widget("napari-seisfm", "Click-to-map")
    ex.out.value = str(tmp_path / "new.zarr")
    ex.run()
    qtbot.waitUntil(lambda: ctm.session is not None, timeout=WAIT)
    assert ctm.session.features_path == str(tmp_path / "new.zarr") or str(ctm.session.features_path).endswith("new.zarr")
    assert "new.zarr" in ex.status.text_plain() and "Click-to-map dock has it" in ex.status.text_plain()


def test_a_file_without_geometry_headers_says_so_in_napari(make_napari_viewer, tmp_path, reader_messages):
    """A SEG-Y whose inline/crossline headers are empty opens as a line of traces; the reason is a
    notification in napari, not only a line on stderr."""
    import segyio

    a = make_survey((32, 32, 32), seed=5).amplitude
    sgy = write_segy(tmp_path / "c.sgy", a, Geometry.regular(a.shape))
    with segyio.open(sgy, "r+", ignore_geometry=True) as f:
        for i in range(f.tracecount):
            f.header[i].update({segyio.TraceField.INLINE_3D: 0, segyio.TraceField.CROSSLINE_3D: 0})
    viewer = make_napari_viewer()
    layers = viewer.open(str(sgy), plugin="napari-seisfm")
    assert len(layers) == 1 and reader_messages, reader_messages
    assert "traces" in reader_messages[-1] and "c.sgy" in reader_messages[-1]
