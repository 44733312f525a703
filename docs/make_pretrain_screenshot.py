"""Regenerate docs/images/pretrain-dock.png: the "Pretrain on this survey" dock after a short run.

    xvfb-run -a .venv/bin/python docs/make_pretrain_screenshot.py [STEPS]

Trains the "test" size for STEPS steps (default 150, about a minute on a laptop CPU) on the
synthetic sample survey; the model goes to a temporary model directory, not yours.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent / "images"


def main(steps: int = 150):
    os.environ["SEISFM_MODELS"] = tempfile.mkdtemp(prefix="seisfm-models-")
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_seisfm.plugin.view import orient_viewer
    from napari_seisfm.plugin.widgets.pretrain import PretrainWidget

    HERE.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=False)
    viewer.window.resize(1400, 1250)
    layers = viewer.open_sample("napari-seisfm", "synthetic")
    orient_viewer(viewer, layers[0])
    viewer.layers["ground truth"].visible = False
    viewer.layers.selection.active = layers[0]
    widget = PretrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pretrain on this survey", area="right")
    widget.budget_unit.value = "steps"
    widget.budget.value = steps
    widget.batch_size.value = 16
    widget.name.value = "my-survey-test"
    widget.run()
    while widget.jobs.worker is not None:
        QApplication.processEvents()
        time.sleep(0.05)
    print(widget.message)
    for _ in range(10):
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.screenshot(str(HERE / "pretrain-dock.png"), canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
