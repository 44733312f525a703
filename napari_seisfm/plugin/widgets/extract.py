"""Dock widget "Extract embeddings": a form over :func:`napari_seisfm.extract.extract_features`.

The extraction runs in a thread through the docks' :class:`._jobs.JobController` (progress bar,
Cancel, teardown when the viewer closes); when it finishes the PCA colour view of the new feature
store is added to the viewer. Errors are notifications.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ...errors import SeisfmError
from . import _notify
from ._jobs import JobController
from ._layers import cube_behind, is_cube_layer, with_browse
from ._scroll import scrolling_layout


class ExtractWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result = None  # the FeatureVolume of the last finished run

        self.cube = QComboBox()
        self.model = QComboBox()
        self.model.addItems(_model_ids())
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("weights file (optional)")
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.precision = QComboBox()
        self.precision.addItems(["auto", "fp32", "bf16", "fp16"])
        self.stride = QLineEdit("4")
        self.stride.setToolTip("one number or three (inline,crossline,time), e.g. 4 or 4,4,2")
        self.batch_size = QSpinBox()
        self.batch_size.setRange(0, 65536)
        self.batch_size.setSpecialValueText("auto")
        self.pca = QSpinBox()
        self.pca.setRange(0, 4096)
        self.pca.setValue(64)
        self.pca.setSpecialValueText("off")
        self.dtype = QComboBox()
        self.dtype.addItems(["i8", "f16", "f32"])
        self.out = QLineEdit()
        self.out.setPlaceholderText("FEATURES.zarr (default: next to the cube)")
        self.overwrite = QCheckBox("overwrite an existing store")
        self.progress = QProgressBar()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)

        form = QFormLayout()
        form.addRow("cube", self.cube)
        form.addRow("model", self.model)
        form.addRow("checkpoint", with_browse(self.checkpoint, self._browse_checkpoint))
        form.addRow("device", self.device)
        form.addRow("precision", self.precision)
        form.addRow("stride", self.stride)
        form.addRow("batch size", self.batch_size)
        form.addRow("PCA dims", self.pca)
        form.addRow("dtype", self.dtype)
        form.addRow("output", with_browse(self.out, self._browse_out))
        form.addRow("", self.overwrite)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)
        layout.addStretch()

        self.jobs = JobController(self, run_buttons=[self.run_button], cancel_button=self.cancel_button,
                                  progress_bar=self.progress, what="extraction", viewer=napari_viewer)
        self.run_button.clicked.connect(self.run)
        self.viewer.layers.events.inserted.connect(self._refresh_cubes)
        self.viewer.layers.events.removed.connect(self._refresh_cubes)
        self._refresh_cubes()

    # ------------------------------------------------------------------ inputs
    def _cube_layers(self):
        return [layer for layer in self.viewer.layers if is_cube_layer(layer)]

    def _refresh_cubes(self, event=None):
        current = self.cube.currentText()
        self.cube.clear()
        self.cube.addItems([layer.name for layer in self._cube_layers()])
        if current:
            self.cube.setCurrentText(current)

    def _browse_checkpoint(self):
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", "", "Weights (*.pth *.pt *.safetensors *.bin);;All files (*)")
        if path:
            self.checkpoint.setText(path)

    def _browse_out(self):
        path = QFileDialog.getExistingDirectory(self, "Feature store (.zarr directory)")
        if path:
            self.out.setText(path)

    def _selected_layer(self):
        name = self.cube.currentText()
        for layer in self._cube_layers():
            if layer.name == name:
                return layer
        raise SeisfmError("no cube selected: open a seismic cube first")

    def _default_out(self, layer, model, stride) -> Path:
        tag = f"{model or 'default'}_s{'-'.join(str(s) for s in stride)}"
        path = layer.metadata.get("path")
        if path:
            p = Path(path)
            return p.with_name(f"{p.stem}_{tag}.zarr")
        return Path(tempfile.gettempdir()) / f"{layer.name}_{tag}.zarr"

    # ------------------------------------------------------------------ run
    def run(self):
        """Start an extraction with the form's settings (returns at once; the work is in a thread)."""
        from ...extract import extract_features
        from ...parsing import parse_triple

        if self.jobs.running:
            return
        try:
            layer = self._selected_layer()
            stride = parse_triple(self.stride.text(), "stride", "4 or 4,4,2")
            cube = cube_behind(layer)
            model = self.model.currentText() or None
            out = Path(self.out.text()) if self.out.text().strip() else self._default_out(layer, model, stride)
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return
        kwargs = dict(
            model=model,
            checkpoint=self.checkpoint.text().strip() or None,
            stride=stride,
            pca=self.pca.value(),
            dtype=self.dtype.currentText(),
            device=self.device.currentText(),
            precision=self.precision.currentText(),
            batch_size=self.batch_size.value() or None,
            overwrite=self.overwrite.isChecked(),
            progress=self.jobs.report,
            cancel=self.jobs.cancel_event,
        )
        self.jobs.start(_extract_and_view, extract_features, cube, out, kwargs, on_done=self._on_done)

    def cancel(self):
        """Stop at the next batch of the chunk in progress; the store stays resumable."""
        self.jobs.cancel()

    def _on_done(self, result):
        fv, (data, kwargs, _) = result
        self.result = fv
        if kwargs["name"] in self.viewer.layers:  # a re-run replaces its layer instead of stacking "[1]", "[2]"
            self.viewer.layers.remove(kwargs["name"])
        # hidden and half transparent: the colours must not cover the seismic or the maps made from the store
        self.viewer.add_image(data, **{**kwargs, "visible": False, "opacity": 0.6})


def _extract_and_view(extract, cube, out, kwargs):
    """Worker body: extract, then build the colour view off the GUI thread too."""
    from ..features_reader import pca_colour_layer

    fv = extract(cube, out, **kwargs)
    return fv, pca_colour_layer(fv)


def _model_ids() -> list[str]:
    try:
        from ...encoders.registry import DEFAULT_MODEL, list_cards
    except ImportError:
        return ["attributes"]
    ids = [getattr(c, "id", c) for c in list_cards()]
    return [DEFAULT_MODEL] + [i for i in ids if i != DEFAULT_MODEL]
