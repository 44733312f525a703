"""Dock widget "Extract embeddings": a form over :func:`napari_seisfm.extract.extract_features`.

The extraction runs in a thread through the docks' :class:`._jobs.JobController` (progress bar,
Cancel, teardown when the viewer closes); when it finishes the PCA colour view of the new feature
store is added to the viewer. Errors are notifications.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, LineEdit, SpinBox
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QProgressBar, QPushButton, QWidget

from ...errors import SeisfmError
from . import _notify
from ._jobs import JobController
from ._layers import cube_behind, is_cube_layer
from ._scroll import scrolling_layout


class ExtractWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result = None  # the FeatureVolume of the last finished run

        self.cube = QComboBox()
        # the parameters: a magicgui form (one widget per argument of extract_features)
        self.model = ComboBox(choices=_model_ids(), label="model")
        self.checkpoint = FileEdit(mode="r", filter="Weights (*.pth *.pt *.safetensors *.bin)", label="checkpoint",
                                   tooltip="weights file (optional; default: the model card's)")
        self.device = ComboBox(choices=["auto", "cpu", "cuda", "mps"], label="device")
        self.precision = ComboBox(choices=["auto", "fp32", "bf16", "fp16"], label="precision")
        self.stride = LineEdit(value="4", label="stride", tooltip="one number or three (inline,crossline,time), e.g. 4 or 4,4,2")
        self.batch_size = SpinBox(value=0, min=0, max=65536, label="batch (0: auto)", tooltip="windows per forward pass (0: the model's)")
        self.pca = SpinBox(value=64, min=0, max=4096, label="PCA dims (0: off)", tooltip="reduce to this many dimensions (0: keep all)")
        self.dtype = ComboBox(choices=["i8", "f16", "f32"], label="dtype")
        self.out = FileEdit(mode="w", filter="Feature store (*.zarr)", label="output",
                            tooltip="FEATURES.zarr (default: next to the cube)")
        self.overwrite = CheckBox(value=False, text="overwrite an existing store")
        self.form = Container(widgets=[self.model, self.checkpoint, self.device, self.precision, self.stride,
                                       self.batch_size, self.pca, self.dtype, self.out, self.overwrite])
        self.progress = QProgressBar()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)

        cube_row = QFormLayout()
        cube_row.addRow("cube", self.cube)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = scrolling_layout(self)
        layout.addLayout(cube_row)
        layout.addWidget(self.form.native)
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
            stride = parse_triple(self.stride.value, "stride", "4 or 4,4,2")
            cube = cube_behind(layer)
            model = self.model.value or None
            out = _path(self.out) or self._default_out(layer, model, stride)
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return
        kwargs = dict(
            model=model,
            checkpoint=_path(self.checkpoint),
            stride=stride,
            pca=self.pca.value,
            dtype=self.dtype.value,
            device=self.device.value,
            precision=self.precision.value,
            batch_size=self.batch_size.value or None,
            overwrite=self.overwrite.value,
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


def _path(edit) -> Path | None:
    """A FileEdit's path, None when left empty (its ``value`` would be ".")."""
    text = str(edit.line_edit.value).strip()
    return Path(text).expanduser() if text else None


def add_model(dock, model_id: str) -> None:
    """List a model trained meanwhile (the Pretrain dock) in this dock's model choices."""
    if model_id not in dock.model.choices:
        dock.model.choices = (*dock.model.choices, model_id)


def _model_ids() -> list[str]:
    try:
        from ...encoders.registry import DEFAULT_MODEL, list_cards
    except ImportError:
        return ["attributes"]
    ids = [getattr(c, "id", c) for c in list_cards()]
    return [DEFAULT_MODEL] + [i for i in ids if i != DEFAULT_MODEL]
