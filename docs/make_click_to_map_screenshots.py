"""Regenerate the screenshots of docs/user-guide-click-to-map.md with a real napari viewer.

    xvfb-run -a .venv/bin/python docs/make_click_to_map_screenshots.py

Runs `seisfm demo` at 96^3 into a temporary folder, opens its cube with the Click-to-map dock, replays the
demo's interpretation (clicks and 100 labelled grid points per class) and saves three PNGs to docs/images/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_seisfm import cli
from napari_seisfm.display import KNN, SIMILARITY, THRESHOLDED, cube_layer
from napari_seisfm.io import open_cube
from napari_seisfm.plugin.view import orient_viewer
from napari_seisfm.plugin.widgets.click_to_map import ClickToMapWidget

HERE = Path(__file__).parent / "images"
PENOBSCOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "penobscot_xl1155.sgy"


def wait(until, timeout=60.0):
    import time

    t0 = time.time()
    while not until():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout:
            raise TimeoutError
    for _ in range(20):
        QApplication.processEvents()


def shot(viewer, name, canvas_only=False):
    path = HERE / name
    img = viewer.screenshot(canvas_only=canvas_only)
    if img.shape[1] > 1000:  # keep the files small
        img = img[::2, ::2] if img.shape[1] > 1600 else img
    import imageio.v3 as iio

    iio.imwrite(path, img[..., :3])
    print(path, path.stat().st_size // 1024, "KB")


def main():
    HERE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    cli.main(["demo", "--out", str(tmp), "--size", "96"])
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1150, 760)
    cube = open_cube(tmp / "synthetic.sgy")
    data, kw, _ = cube_layer(cube, name="synthetic")
    seismic = viewer.add_image(data, **kw)
    orient_viewer(viewer, seismic)
    widget = ClickToMapWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Click-to-map", area="right")
    widget.load_features(str(tmp / "features.zarr"))
    wait(lambda: widget.features is not None)
    widget.files.open_interpretation(tmp / "interpretation.json")
    wait(lambda: widget.result is not None and widget._map_worker is None and widget.session.is_current(widget.result))
    viewer.dims.set_point(0, viewer.layers["Positive"].data[0][0])
    viewer.layers[THRESHOLDED].visible = False
    viewer.layers["training labels"].visible = False
    viewer.reset_view()
    shot(viewer, "ctm-similarity.png")
    viewer.layers[SIMILARITY].visible = False
    viewer.layers[THRESHOLDED].visible = True
    shot(viewer, "ctm-threshold.png", canvas_only=True)
    viewer.layers[THRESHOLDED].visible = False
    widget.segmentation.run_knn()
    wait(lambda: widget.segmentation.knn_result is not None and widget.segmentation.jobs.worker is None)
    viewer.layers["training labels"].visible = True
    shot(viewer, "ctm-knn.png")
    viewer.layers["training labels"].visible = False
    viewer.layers[KNN].visible = False
    viewer.layers[SIMILARITY].visible = True
    viewer.layers[SIMILARITY].rendering = "mip"
    seismic.visible = False
    viewer.dims.ndisplay = 3
    viewer.scene.camera.angles = (0, 30, 60)
    shot(viewer, "ctm-3d.png", canvas_only=True)
    viewer.close()
    if PENOBSCOT.exists():
        real_line(tmp)


def real_line(tmp):
    """The dock on a real 2-D line (Penobscot crossline 1155, ../shared/data): two clicks on a bright
    reflector, one below it."""
    from napari_seisfm.extract import extract_features
    from napari_seisfm.plugin.widgets.click_to_map import NEGATIVE, POSITIVE

    extract_features(PENOBSCOT, tmp / "penobscot.zarr", stride=4)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 840)
    viewer.open(str(PENOBSCOT), plugin="napari-seisfm")
    widget = ClickToMapWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Click-to-map", area="right")
    widget.load_features(str(tmp / "penobscot.zarr"))
    wait(lambda: widget.features is not None)
    for layer, point in ((POSITIVE, (1300, 1155, 1000.0)), (POSITIVE, (1320, 1155, 1004.0)), (NEGATIVE, (1300, 1155, 2000.0))):
        viewer.layers[layer].add(list(point))
        wait(lambda: widget._map_worker is None)
    wait(
        lambda: (
            widget.result is not None
            and widget._map_worker is None
            and widget.session.is_current(widget.result)
            and len(widget.session.grid_negatives) == 1
        )
    )
    viewer.layers[POSITIVE].selected_data = set()
    shot(viewer, "ctm-penobscot.png")
    viewer.close()


if __name__ == "__main__":
    main()
