"""Regenerate the screenshots of docs/user-guide.md with a real napari viewer.

xvfb-run -a .venv/bin/python docs/make_screenshots.py
"""

from pathlib import Path

import napari

from napari_seisfm.plugin.view import orient_viewer

HERE = Path(__file__).parent / "images"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main():
    HERE.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=False)
    viewer.window.resize(1100, 800)
    layers = viewer.open_sample("napari-seisfm", "synthetic")
    orient_viewer(viewer, layers[0])
    viewer.screenshot(str(HERE / "synthetic-inline.png"), canvas_only=False)
    viewer.dims.order = (2, 0, 1)  # a time slice
    viewer.dims.set_current_step(2, 70)
    viewer.reset_view()
    viewer.screenshot(str(HERE / "synthetic-timeslice.png"), canvas_only=True)
    viewer.close()
    if (SHARED / "real" / "penobscot_xl1155.sgy").exists():
        viewer = napari.Viewer(show=False)
        viewer.window.resize(1100, 700)
        layer = viewer.open(str(SHARED / "real" / "penobscot_xl1155.sgy"), plugin="napari-seisfm")[0]
        orient_viewer(viewer, layer)
        viewer.screenshot(str(HERE / "penobscot-line.png"), canvas_only=False)
        viewer.close()


if __name__ == "__main__":
    main()
