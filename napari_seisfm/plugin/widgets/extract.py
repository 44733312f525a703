"""Dock widget "Extract embeddings": a form over :func:`napari_seisfm.extract.extract_features`.

The extraction runs off the GUI thread (the dock base's job: progress within a chunk with the time left,
Cancel heard within a second, teardown when the viewer closes). When it finishes, the PCA colours of the
new store arrive hidden (they would cover the seismic), the status line says where the store went, and an
open Click-to-map dock on the same cube gets the store by itself. A cancelled run keeps its finished chunks:
Run again resumes it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, FileEdit, LineEdit, SpinBox

from ...errors import SeisfmCancelled, SeisfmError
from ._dock import Dock, form
from ._layers import cube_behind, is_cube_layer

NEXT_STEP = "Next: Click-to-map > Load features, then click the feature on the Positive layer"


class ExtractWidget(Dock):
    what = "extraction"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.result = None  # the FeatureVolume of the last finished run

        self.cube = self.layer_picker("cube", is_cube_layer, tooltip="the seismic layer to embed")
        # the parameters: one widget per argument of extract_features
        self.model = ComboBox(choices=_model_ids(), label="model")
        self.checkpoint = FileEdit(
            mode="r",
            filter="Weights (*.pth *.pt *.safetensors *.bin)",
            label="checkpoint",
            tooltip="weights file (optional; default: the model card's)",
        )
        self.device = ComboBox(choices=["auto", "cpu", "cuda", "mps"], label="device")
        self.precision = ComboBox(choices=["auto", "fp32", "bf16", "fp16"], label="precision")
        self.stride = LineEdit(value="4", label="stride", tooltip="one number or three (inline,crossline,time), e.g. 4 or 4,4,2")
        self.batch_size = SpinBox(
            value=0, min=0, max=65536, label="batch (0: auto)", tooltip="windows per forward pass (0: the model's)"
        )
        self.pca = SpinBox(
            value=64, min=0, max=4096, label="PCA dims (0: off)", tooltip="reduce to this many dimensions (0: keep all)"
        )
        self.dtype = ComboBox(choices=["i8", "f16", "f32"], label="dtype")
        self.out = FileEdit(
            mode="w",
            filter="Feature store (*.zarr)",
            label="output",
            tooltip="FEATURES.zarr (default: next to the cube, as shown)",
        )
        self.overwrite = CheckBox(value=False, text="overwrite an existing store")
        self.form = form(
            self.cube,
            self.model,
            self.checkpoint,
            self.device,
            self.precision,
            self.stride,
            self.batch_size,
            self.pca,
            self.dtype,
            self.out,
            self.overwrite,
        )
        self.body.addWidget(self.form.native)
        self.add_job_row()
        self.body.addStretch()

        self.run_button.clicked.connect(self.run)
        for w in (self.cube, self.model, self.stride):
            w.changed.connect(self._show_default_out)
        self.reset_choices()
        self._show_default_out()
        self.say("Choose a cube and press Run: the store is written next to the cube.")

    # ------------------------------------------------------------------ inputs
    def _selected_layer(self):
        layer = self.cube.value
        if layer is None:
            raise SeisfmError("no cube selected: open a seismic cube first")
        return layer

    def _default_out(self, layer, model, stride) -> Path:
        tag = f"{model or 'default'}_s{'-'.join(str(s) for s in stride)}"
        path = layer.metadata.get("path")
        if path:
            p = Path(path)
            return p.with_name(f"{p.stem}_{tag}.zarr")
        return Path(tempfile.gettempdir()) / f"{layer.name}_{tag}.zarr"

    def _show_default_out(self, *_):
        """The output field's hint: where the store goes when the field is left empty."""
        from ...parsing import parse_triple

        try:
            hint = str(
                self._default_out(
                    self._selected_layer(), self.model.value or None, parse_triple(self.stride.value, "stride", "4 or 4,4,2")
                )
            )
        except SeisfmError:
            hint = "FEATURES.zarr (default: next to the cube)"
        self.out.line_edit.native.setPlaceholderText(hint)

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
            self.error(exc)
            return
        kwargs = {
            "model": model,
            "checkpoint": _path(self.checkpoint),
            "stride": stride,
            "pca": self.pca.value,
            "dtype": self.dtype.value,
            "device": self.device.value,
            "precision": self.precision.value,
            "batch_size": self.batch_size.value or None,
            "overwrite": self.overwrite.value,
            "progress": self.jobs.report,
            "cancel": self.jobs.cancel_event,
        }
        self._run = (layer, out)
        self.say(f"embedding {layer.name} into {out} ...")
        self.jobs.start(_extract_and_view, extract_features, cube, out, kwargs, on_done=self._on_done, on_error=self._on_error)

    def cancel(self):
        """Stop within a step of the work; the finished chunks stay in the store and Run resumes it."""
        self.jobs.cancel()

    def _on_error(self, exc):
        self.error(exc)
        if isinstance(exc, SeisfmCancelled):
            self.say(f"{exc}. Press Run to continue from there.")

    def _on_done(self, result):
        fv, (data, kwargs, _) = result
        self.result = fv
        if kwargs["name"] in self.viewer.layers:  # a re-run replaces its layer instead of stacking "[1]", "[2]"
            self.viewer.layers.remove(kwargs["name"])
        self.viewer.add_image(data, **kwargs)  # hidden: the colours must not cover the seismic
        picked = _hand_to_click_to_map(self.viewer, fv, self._run[0])
        done, total = fv.progress()
        where = f"the Click-to-map dock has it ({'loading' if picked == 'loading' else 'chosen'})" if picked else NEXT_STEP
        self.say(
            f"Feature store ready: {fv.path} ({total} chunk{'s' if total != 1 else ''}, {fv.grid.shape[0]}x{fv.grid.shape[1]}x"
            f"{fv.grid.shape[2]} grid, {fv.dim}-d). {where}. Its PCA colours are the hidden layer "
            f"{kwargs['name']!r}."
        )


def _extract_and_view(extract, cube, out, kwargs):
    """Worker body: extract, then build the colour view off the GUI thread too."""
    from ..features_reader import pca_colour_layer

    fv = extract(cube, out, **kwargs)
    return fv, pca_colour_layer(fv)


def _hand_to_click_to_map(viewer, fv, layer) -> str | None:
    """Give the new store to an open Click-to-map dock on the same cube: chosen, and loaded when the dock
    has nothing loaded yet. Returns "loading", "chosen" or None (no such dock)."""
    from .click_to_map import ClickToMapWidget

    try:
        docks = [w for w in viewer.window.dock_widgets.values() if isinstance(w, ClickToMapWidget)]
    except (AttributeError, RuntimeError):
        return None
    state = None
    for dock in docks:
        state = dock.offer_store(fv.path, layer) or state
    return state


def _path(edit) -> Path | None:
    """A FileEdit's path, None when left empty (its ``value`` would be ".")."""
    text = str(edit.line_edit.value).strip()
    return Path(text).expanduser() if text else None


def add_model(dock, model_id: str) -> None:
    """List a model trained meanwhile (the Pretrain dock) in this dock's model choices."""
    if model_id not in dock.model.choices:
        dock.model.choices = (*dock.model.choices, model_id)


def _model_ids() -> list[str]:
    from ...encoders.registry import DEFAULT_MODEL, list_cards

    ids = [getattr(c, "id", c) for c in list_cards()]
    return [DEFAULT_MODEL] + [i for i in ids if i != DEFAULT_MODEL]
