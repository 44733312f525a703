"""The "Files" box of the Click-to-map dock: export the map or the classes on the cube grid, save the
interpretation and open it again (the session does the work; this box asks for paths and places layers)."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QPushButton, QVBoxLayout

from ...display import KNN, SIMILARITY
from ...errors import SeisfmError
from .. import view
from . import _notify
from ._layers import cube_behind


class FilesBox(QGroupBox):
    def __init__(self, dock):
        """``dock``: the Click-to-map dock (its viewer, session, seismic layer and boxes)."""
        super().__init__("Files")
        self.dock = dock
        self.viewer = dock.viewer
        self.export_sim_button = QPushButton("Export similarity...")
        self.export_knn_button = QPushButton("Export classes...")
        self.save_button = QPushButton("Save interpretation...")
        self.open_button = QPushButton("Open interpretation...")
        layout = QVBoxLayout(self)
        for pair in ((self.export_sim_button, self.export_knn_button), (self.save_button, self.open_button)):
            row = QHBoxLayout()
            for b in pair:
                row.addWidget(b)
            layout.addLayout(row)
        self.export_sim_button.clicked.connect(lambda: self._export_dialog(SIMILARITY))
        self.export_knn_button.clicked.connect(lambda: self._export_dialog(KNN))
        self.save_button.clicked.connect(self._save_dialog)
        self.open_button.clicked.connect(self._open_dialog)

    # ------------------------------------------------------------------ export
    def export(self, kind: str, path) -> bool:
        """Write the similarity map or the segmentation classes on the cube grid (SEG-Y with the source headers,
        .sgz, .npy, .zarr) in the dock's job: progress, Cancel (nothing is left at ``path``). False when it
        cannot start."""
        try:
            if self.dock.session is None:
                raise SeisfmError("load a feature store first")
            if kind == SIMILARITY:
                if self.dock.result is None:
                    raise SeisfmError("nothing to export: no similarity map yet (add a positive click)")
                data, labels = self.dock.result.score, False
            else:
                layer = self.dock._layer(KNN)
                if layer is None:
                    raise SeisfmError("nothing to export: run the segmentation first")
                data, labels = np.asarray(layer.data), True  # as shown: the user may have corrected it
            cube = cube_behind(self.dock.seismic)
        except SeisfmError as exc:
            self.dock.error(exc)
            return False

        def wrote(p):
            self.dock.say(f"wrote {p}")
            _notify.show_info(f"wrote {p}")

        self.dock.say(f"exporting {kind} to {path} ...")
        jobs = self.dock.jobs
        return jobs.start(
            self.dock.session.export,
            path,
            data,
            cube,
            labels=labels,
            progress=jobs.report,
            cancel=jobs.cancel_event,
            on_done=wrote,
        )

    def _export_dialog(self, kind):
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {kind}", "", "SEG-Y (*.sgy *.segy);;seismic-zfp (*.sgz);;numpy (*.npy);;zarr (*.zarr)"
        )
        if path:
            self.export(kind, path)

    # ------------------------------------------------------------------ save / open
    def _labels_for_saving(self) -> dict:
        """The training labels layer as Interpretation fields, placed in survey units (the exaggeration is a
        view setting, not part of the interpretation)."""
        name = self.dock.segmentation.training.currentText()
        if not (name and name in self.viewer.layers):
            return {}
        layer = self.viewer.layers[name]
        survey = self.dock.survey
        return {
            "labels": np.asarray(layer.data),
            "labels_name": name,
            "labels_scale": tuple(float(v) for v in view.world_to_survey(self.viewer, layer.scale, survey)),
            "labels_translate": tuple(float(v) for v in view.world_to_survey(self.viewer, layer.translate, survey)),
        }

    def interpretation(self):
        """The current state as an :class:`~napari_seisfm.interpretation.Interpretation`."""
        return self.dock.session.interpretation(**self._labels_for_saving())

    def save_interpretation(self, path):
        try:
            if self.dock.session is None:
                raise SeisfmError("load a feature store first: there is nothing to save yet")
            return self.dock.session.save(path, **self._labels_for_saving())
        except (SeisfmError, OSError) as exc:
            _notify.show_error(f"{path}: {exc}" if isinstance(exc, OSError) else str(exc))
            return None

    def open_interpretation(self, path):
        """Restore clicks, labels and parameters (the features must be loaded; the map recomputes)."""
        try:
            if self.dock.session is None:
                raise SeisfmError("load the feature store of this interpretation first")
            interp = self.dock.session.load(path)
        except Exception as exc:  # noqa: BLE001 - never an unhandled exception in napari (SeisfmError is the rule)
            self.dock.error(exc)
            return None
        s = self.dock.session
        for widget, value in ((self.dock.decision, s.decision), (self.dock.connected, s.connected)):
            with widget.changed.blocked():
                widget.value = value
        self.dock.segmentation.show_settings(s.segmentation)
        self.dock._show_threshold(s.threshold)
        self.dock._write_layers()
        if interp.labels is not None:
            self._place_labels(interp)
        refused = list(getattr(interp, "refused", None) or [])
        left_out = f"; {len(refused)} click(s) left out: {refused[0]}" if refused else ""
        self.dock.say(f"opened {path}: {len(interp.positives)} positive, {len(interp.negatives)} negative clicks{left_out}")
        if refused:
            _notify.show_info(f"{path}: {len(refused)} click(s) left out: {'; '.join(refused[:3])}")
        return interp

    def _place_labels(self, interp):
        """The saved training labels into the layer of that name (reused, never a second "[1]" copy)."""
        survey = self.dock.survey
        if interp.labels_scale is not None:
            kw = {
                "scale": tuple(view.to_world(self.viewer, interp.labels_scale, survey)),
                "translate": tuple(view.to_world(self.viewer, interp.labels_translate, survey)),
            }
        elif interp.labels.shape == tuple(self.dock.session.features.shape):  # no placement saved: infer it from the shape
            kw = {k: v for k, v in self.dock.grid_transform().items() if k != "axis_labels"}
        else:
            kw = {"scale": self.dock.seismic.scale, "translate": self.dock.seismic.translate}
        layer = self.dock._layer(interp.labels_name)
        if layer is not None and type(layer).__name__ == "Labels":
            if layer.data.shape == interp.labels.shape:
                layer.data = interp.labels
                layer.scale, layer.translate = kw["scale"], kw["translate"]
                return self._select(layer)
            self.viewer.layers.remove(layer)  # another grid: replaced, not duplicated
        layer = self.viewer.add_labels(interp.labels, name=interp.labels_name, metadata={"survey": survey}, **kw)
        self._select(layer)

    def _select(self, layer):
        self.dock.segmentation.refresh_labels()
        self.dock.segmentation.training.setCurrentText(layer.name)

    def _save_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save interpretation", "", "Interpretation (*.json)")
        if path and (p := self.save_interpretation(path)):
            _notify.show_info(f"saved {p}")

    def _open_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open interpretation", "", "Interpretation (*.json)")
        if path:
            self.open_interpretation(path)
