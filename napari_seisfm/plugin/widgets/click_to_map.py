"""Dock widget "Click-to-map": positive/negative clicks -> whole-cube map; painted labels -> segmentation.

A thin view over :mod:`napari_seisfm.search` (the engine) and :mod:`napari_seisfm.interpretation`
(save/load, click sync, default threshold). Layers it makes:

- "Positive" (green) and "Negative" (magenta) Points in survey coordinates (inline, crossline, time);
  each click counts at the nearest feature-grid point but stays drawn where it was clicked; a click
  outside the volume is removed with a message.
- "similarity" Image on the feature grid (``scale = stride * spacing``, no upsampled copy): the target's
  probability from the click probe (default) or the centroid similarity, and "similarity > threshold"
  Labels from the threshold slider (by default only the bodies connected to the positive clicks).
- "segmentation" Labels on the feature grid from a training Labels layer (feature or cube grid), by the
  chosen method (linear with smoothing by default, or kNN).

Map updates are debounced (150 ms) and computed in a thread worker that owns the search object, so a
new click only adds one vector to a running sum and never re-reads the store.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ... import display
from ...display import KNN, SIMILARITY, THRESHOLDED
from ...errors import SeisfmError
from ...interpretation import Interpretation, load_interpretation, save_interpretation, sync_clicks
from ...search.linear_segmenter import SMOOTH
from . import _notify
from ._notify import report
from ._scroll import scrolling_layout
from .extract import _cube_source, _is_cube_layer, _with_browse

POSITIVE, NEGATIVE = "Positive", "Negative"
TRAINING = "training labels"
FACIES = "facies (k-means)"
MATCH = "match"
DECISION_LABELS = {"probe": "probe learned from the clicks", "centroid": "centroid similarity"}
METHOD_LABELS = {"linear": "linear + smoothing", "knn": "kNN (paper's protocol)"}
DEBOUNCE_MS = 150
THRESHOLD_REST_MS = 80
N_MATCHES = 20
NO_POSITIVE = "No positive click yet: click the feature on the Positive layer"
SLIDER_STEPS = 100  # threshold slider: hundredths of a score unit, -2..2


class _Relay(QObject):
    progressed = Signal(int, int)


class ClickToMapWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.features = None  # FeatureMatrix once loaded
        self.features_path: str | None = None
        self.seismic = None  # the seismic layer the features belong to
        self.search = None  # ProbeSearch / CentroidSearch, touched only inside map workers (one at a time)
        self.score_map: np.ndarray | None = None
        self.matches: list = []
        self.knn_result = None
        self.facies_result = None
        self._match_pos = -1
        self.positives: list[tuple[int, int, int]] = []  # grid points of the clicks, as snapped
        self.negatives: list[tuple[int, int, int]] = []
        self._history: list[str] = []  # "pos"/"neg" per accepted click, for Undo
        self._syncing = False
        self._dirty = False
        self._map_worker = self._knn_worker = self._io_worker = None
        self._threshold_touched = False
        self._cancel = threading.Event()
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_knn_progress)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._recompute)
        # the mask follows the slider once it rests: on a 256^3 grid each mask costs ~0.15 s (compare + labelling)
        self._threshold_timer = QTimer(self)
        self._threshold_timer.setSingleShot(True)
        self._threshold_timer.setInterval(THRESHOLD_REST_MS)
        self._threshold_timer.timeout.connect(lambda: self._update_threshold_layer())

        # --- inputs
        self.cube = QComboBox()
        self.store = QComboBox()
        self.store.setEditable(True)
        self.store.setToolTip("feature store (.zarr) of this cube; feature layers opened in napari are listed")
        self.load_button = QPushButton("Load features")
        self.status = QLabel("Load a feature store of the seismic cube.")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("seismic", self.cube)
        form.addRow("features", _with_browse(self.store, self._browse_store))

        # --- similarity
        self.decision = QComboBox()
        for key, text in DECISION_LABELS.items():
            self.decision.addItem(text, key)
        self.decision.setToolTip("probe: a logistic regression fitted to the clicks (map = probability of the target); "
                                 "centroid: mean cosine to the positive clicks minus mean cosine to the negatives")
        self.connected = QCheckBox("only bodies connected to the positive clicks")
        self.connected.setChecked(True)
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(-2 * SLIDER_STEPS, 2 * SLIDER_STEPS)
        self.threshold_label = QLabel("threshold")
        self.auto_button = QPushButton("Auto")
        self.auto_button.setToolTip("the default threshold: 0.5 for the probe, the lowest click score for the centroid")
        self.undo_button = QPushButton("Undo click")
        self.clear_button = QPushButton("Clear clicks")
        self.match_list = QListWidget()
        self.match_list.setMaximumHeight(130)
        self.next_button = QPushButton("Next best match")
        sim = QGroupBox("Click-to-map")
        sl = QVBoxLayout(sim)
        sl.addWidget(self.decision)
        sl.addWidget(self.connected)
        row = QHBoxLayout()
        row.addWidget(self.threshold_label)
        row.addWidget(self.threshold)
        row.addWidget(self.auto_button)
        sl.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.undo_button)
        row.addWidget(self.clear_button)
        sl.addLayout(row)
        sl.addWidget(QLabel("top matches"))
        sl.addWidget(self.match_list)
        sl.addWidget(self.next_button)

        # --- segmentation
        self.training = QComboBox()
        self.new_labels_button = QPushButton("New training labels")
        self.k = QSpinBox()
        self.k.setRange(1, 100)
        self.k.setValue(5)
        self.weighted = QCheckBox("distance-weighted")
        self.method = QComboBox()
        for key, text in METHOD_LABELS.items():
            self.method.addItem(text, key)
        self.smooth = QDoubleSpinBox()
        self.smooth.setRange(0.0, 10.0)
        self.smooth.setSingleStep(0.5)
        self.smooth.setValue(SMOOTH)
        self.smooth.setToolTip("Gaussian smoothing of the class probabilities, in grid points (0: none)")
        self.knn_button = QPushButton("Segment")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        knn = QGroupBox("Segmentation")
        kf = QFormLayout(knn)
        kf.addRow("labels", self.training)
        kf.addRow("", self.new_labels_button)
        kf.addRow("method", self.method)
        kf.addRow("smoothing", self.smooth)
        row = QHBoxLayout()
        row.addWidget(self.k)
        row.addWidget(self.weighted)
        kf.addRow("k", row)
        self._knn_row = row
        row = QHBoxLayout()
        row.addWidget(self.knn_button)
        row.addWidget(self.cancel_button)
        kf.addRow(row)
        self.n_facies = QSpinBox()
        self.n_facies.setRange(2, 64)
        self.n_facies.setValue(8)
        self.facies_button = QPushButton("Facies (k-means)")
        self.facies_button.setToolTip("unsupervised: cluster every grid point's vector into k facies (no labels needed)")
        row = QHBoxLayout()
        row.addWidget(self.facies_button)
        row.addWidget(QLabel("k"))
        row.addWidget(self.n_facies)
        kf.addRow(row)
        kf.addRow(self.progress)

        # --- display: vertical exaggeration and where the section is, in survey units
        self.exaggeration = QDoubleSpinBox()
        self.exaggeration.setDecimals(3)
        self.exaggeration.setRange(*display.EXAGGERATION_RANGE)
        self.exaggeration.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        self.exaggeration.setKeyboardTracking(False)
        self.exaggeration.setToolTip("vertical exaggeration: world time = ms x this factor (for every layer, so "
                                     "clicks and overlays stay aligned); the default fills the canvas with the section")
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("the default exaggeration for the seismic layer, and reset the view")
        self.position = QLabel("")
        view = QGroupBox("Display")
        vf = QFormLayout(view)
        row = QHBoxLayout()
        row.addWidget(self.exaggeration)
        row.addWidget(self.fit_button)
        vf.addRow("vertical exaggeration", row)
        vf.addRow("section", self.position)

        # --- export and session
        self.export_sim_button = QPushButton("Export similarity...")
        self.export_knn_button = QPushButton("Export classes...")
        self.save_button = QPushButton("Save interpretation...")
        self.open_button = QPushButton("Open interpretation...")
        files = QGroupBox("Files")
        fl = QVBoxLayout(files)
        for pair in ((self.export_sim_button, self.export_knn_button), (self.save_button, self.open_button)):
            row = QHBoxLayout()
            for b in pair:
                row.addWidget(b)
            fl.addLayout(row)

        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.load_button)
        layout.addWidget(self.status)
        layout.addWidget(view)
        layout.addWidget(sim)
        layout.addWidget(knn)
        layout.addWidget(files)
        layout.addStretch()

        self.load_button.clicked.connect(lambda: self.load_features())
        self.threshold.valueChanged.connect(self._on_threshold)
        self.decision.currentIndexChanged.connect(lambda _: self._new_search())
        self.connected.toggled.connect(lambda _: self._update_threshold_layer())
        self.method.currentIndexChanged.connect(lambda _: self._method_changed())
        self.threshold.sliderPressed.connect(lambda: setattr(self, "_threshold_touched", True))
        self.auto_button.clicked.connect(self.auto_threshold)
        self.undo_button.clicked.connect(self.undo)
        self.clear_button.clicked.connect(self.clear)
        self.match_list.currentRowChanged.connect(lambda i: self.jump_to_match(i) if i >= 0 else None)
        self.next_button.clicked.connect(self.next_match)
        self.new_labels_button.clicked.connect(self.new_training_labels)
        self.knn_button.clicked.connect(lambda: self.run_knn())
        self.facies_button.clicked.connect(lambda: self.run_facies())
        self.cancel_button.clicked.connect(self._cancel.set)
        self.export_sim_button.clicked.connect(lambda: self._export_dialog(SIMILARITY))
        self.export_knn_button.clicked.connect(lambda: self._export_dialog(KNN))
        self.save_button.clicked.connect(self._save_dialog)
        self.open_button.clicked.connect(self._open_dialog)
        self.exaggeration.valueChanged.connect(self.set_exaggeration)
        display.on_exaggeration(self.viewer, lambda _: self._sync_exaggeration())
        self.fit_button.clicked.connect(self.fit_exaggeration)
        self.viewer.dims.events.point.connect(self._show_position)
        self.viewer.dims.events.order.connect(self._show_position)
        self.viewer.layers.events.inserted.connect(self._refresh_inputs)
        self.viewer.layers.events.removed.connect(self._refresh_inputs)
        self._refresh_inputs()
        self._set_threshold_value(0.9)
        self._method_changed()

    def _method_changed(self):
        knn = self.method.currentData() == "knn"
        self.k.setEnabled(knn)
        self.weighted.setEnabled(knn)
        self.smooth.setEnabled(not knn)

    def _new_search(self):
        """A fresh search object for the chosen decision; the clicks are replayed by the next map worker."""
        from ...search import make_search

        if self.features is None or self._map_worker is not None:
            if self._map_worker is not None:
                self._dirty = True
            return
        self.search = make_search(self.features, self.decision.currentData())
        self._threshold_touched = False
        self._points_changed()

    # ------------------------------------------------------------------ inputs
    def _refresh_inputs(self, event=None):
        current = self.cube.currentText()
        self.cube.clear()
        self.cube.addItems([layer.name for layer in self.viewer.layers if _is_cube_layer(layer) and layer.metadata.get("kind") != "features"])
        if current:
            self.cube.setCurrentText(current)
        paths = [layer.metadata["path"] for layer in self.viewer.layers
                 if layer.metadata.get("kind") == "features" and layer.metadata.get("path")]
        for p in paths:
            if self.store.findText(p) < 0:
                self.store.addItem(p)
        if not self.store.currentText() and paths:
            self.store.setCurrentText(paths[0])
        cur = self.training.currentText()
        self.training.clear()
        self.training.addItems([layer.name for layer in self.viewer.layers
                                if type(layer).__name__ == "Labels" and layer.name not in (KNN, THRESHOLDED, FACIES)])
        if cur:
            self.training.setCurrentText(cur)
        self._sync_exaggeration()

    # ------------------------------------------------------------------ display
    def _sync_exaggeration(self):
        """The spin box shows the viewer's factor (orient_viewer sets the default after a cube lands)."""
        self.exaggeration.blockSignals(True)
        self.exaggeration.setValue(display.viewer_exaggeration(self.viewer))
        self.exaggeration.blockSignals(False)
        self._show_position()

    def set_exaggeration(self, value: float):
        """Stretch time by ``value`` on every 3-D layer (clicks stay in survey units) and refit the view."""
        value = display.set_exaggeration(self.viewer, value)
        self._sync_exaggeration()
        self.viewer.reset_view()
        return value

    def fit_exaggeration(self):
        """Back to the default factor for the seismic layer's geometry."""
        try:
            layer = self._seismic_layer()
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return None
        spacing = np.asarray(layer.scale, float) / np.array([1.0, 1.0, display.viewer_exaggeration(self.viewer)])
        return self.set_exaggeration(display.default_exaggeration(layer.data.shape, spacing, display.canvas_aspect(self.viewer)))

    def _show_position(self, event=None):
        """'inline 1064' for the slider (napari's own slider shows the index, 64 of 127)."""
        dims = self.viewer.dims
        if dims.ndim != 3 or dims.ndisplay != 2:
            self.position.setText("")
            return
        axis = dims.not_displayed[0]
        value = display.to_survey(self.viewer, dims.point)[axis]
        label = str(dims.axis_labels[axis])
        name, _, unit = label.partition(" (")
        self.position.setText(f"{name} {value:g}{' ' + unit.rstrip(')') if unit else ''}")

    def _browse_store(self):
        path = QFileDialog.getExistingDirectory(self, "Feature store (.zarr directory)")
        if path:
            self.store.setCurrentText(path)

    def _seismic_layer(self):
        name = self.cube.currentText()
        for layer in self.viewer.layers:
            if layer.name == name and _is_cube_layer(layer):
                return layer
        raise SeisfmError("no seismic layer: open a cube first")

    def _layer(self, name):
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _say(self, text: str):
        self.status.setText(text)

    # ------------------------------------------------------------------ features
    def load_features(self, path=None):
        """Open the feature store in a worker; refuse a store of another cube (fingerprint)."""
        from napari.qt.threading import create_worker

        from ...search import FeatureMatrix

        try:
            seismic = self._seismic_layer()
            path = str(path or self.store.currentText()).strip()
            if not path:
                raise SeisfmError("choose a feature store (.zarr) first")
            fingerprint = (seismic.metadata.get("geometry") or {}).get("fingerprint")
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return
        self.store.setCurrentText(path)
        self._say(f"loading {path} ...")
        self.load_button.setEnabled(False)
        worker = create_worker(FeatureMatrix.open, path, fingerprint=fingerprint, _ignore_errors=True)
        worker.returned.connect(lambda fm: self._on_features(fm, path, seismic))
        worker.errored.connect(self._on_error)
        worker.finished.connect(lambda: self.load_button.setEnabled(True))
        self._io_worker = worker
        worker.start()

    def _on_features(self, fm, path, seismic):
        from ...search import make_search

        self.features, self.features_path, self.seismic = fm, path, seismic
        self.search = make_search(fm, self.decision.currentData())
        self.score_map = None
        self._ensure_points_layers()
        self._say(f"{fm.grid.shape} grid, stride {fm.grid.stride}, {fm.dim}-d {fm.dtype}. " + NO_POSITIVE)
        self._points_changed()

    def grid_transform(self) -> dict:
        """scale/translate of a layer on the feature grid (survey units)."""
        from ...cube import geometry_from_summary
        from ...display import world_transform

        fm = self.features
        return world_transform(geometry_from_summary(fm.geometry), fm.grid.stride, fm.grid.origin,
                               exaggeration=display.viewer_exaggeration(self.viewer))

    def _points_scale(self) -> tuple[float, float, float]:
        """Points layers hold survey coordinates; their scale carries the exaggeration (world = data x scale)."""
        return (1.0, 1.0, display.viewer_exaggeration(self.viewer))

    def _marker_size(self, cells: float = 1.0) -> float:
        """Points ``size`` for ``cells`` grid cells on screen (napari scales a point's size by the last axis' scale)."""
        return cells * max(self.grid_transform()["scale"]) / self._points_scale()[2]

    def _ensure_points_layers(self):
        size = self._marker_size()  # one grid cell along its longest side on screen
        for name, colour in ((POSITIVE, "lime"), (NEGATIVE, "magenta")):
            layer = self._layer(name)
            if layer is None:
                with warnings.catch_warnings():  # deprecated in 0.9 but still the way to see a snapped click on a nearby slice
                    warnings.simplefilter("ignore", FutureWarning)
                    layer = self.viewer.add_points(np.zeros((0, 3)), ndim=3, name=name, face_color=colour,
                                                   border_color="white", size=size, out_of_slice_display=True,
                                                   scale=self._points_scale())
                layer.events.data.connect(self._on_points_event)
            layer.current_face_color = colour
        self.viewer.layers.selection.active = self._layer(POSITIVE)

    # ------------------------------------------------------------------ clicks
    def _on_points_event(self, event):
        if self._syncing or getattr(event, "action", None) not in ("added", "removed", "changed"):
            return
        if event.action == "added":
            self._history.append("neg" if event.source.name == NEGATIVE else "pos")
        QTimer.singleShot(0, self._points_changed)  # after napari has finished its own bookkeeping

    def _snap(self, layer) -> list[tuple[int, int, int]]:
        """The grid point each click of ``layer`` snaps to; clicks outside the volume are removed (with a message).

        The points stay where they were clicked: moved to a grid point on another inline, napari would no
        longer draw them on the section the user clicked on, and the click would seem to have failed.
        """
        fm = self.features
        grid, keep, refused = [], [], []
        for p in np.asarray(layer.data, float):
            try:
                g = fm.to_grid(p, "survey")
                fm.vector(g)  # refuse grid points without an embedding too
            except SeisfmError as exc:
                refused.append(str(exc))
                continue
            grid.append(g)
            keep.append(p)
        if refused:
            self._syncing = True
            try:
                layer.data = np.asarray(keep, float).reshape(-1, 3)
                layer.selected_data = set()
            finally:
                self._syncing = False
            _notify.show_error(f"click refused: {refused[0]}")
        return grid

    def _points_changed(self):
        if self.features is None:
            return
        pos_layer, neg_layer = self._layer(POSITIVE), self._layer(NEGATIVE)
        self.positives = self._snap(pos_layer) if pos_layer is not None else []
        self.negatives = self._snap(neg_layer) if neg_layer is not None else []
        self._timer.start()

    def _recompute(self):
        """Debounced: start a map worker (or mark dirty when one is running)."""
        from napari.qt.threading import create_worker

        if self.features is None:
            return
        if not self.positives:
            self.score_map = None
            self.matches = []
            self.match_list.clear()
            for name in (SIMILARITY, THRESHOLDED):
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
            self._say(NO_POSITIVE)
            if self.negatives:
                _notify.show_info(NO_POSITIVE)
            return
        if self._map_worker is not None:
            self._dirty = True
            return
        self._dirty = False
        self._map_worker = create_worker(_compute_map, self.search, list(self.positives), list(self.negatives), N_MATCHES,
                                         self.connected.isChecked(), _ignore_errors=True)
        self._map_worker.returned.connect(self._on_map)
        self._map_worker.errored.connect(self._on_error)
        self._map_worker.finished.connect(self._on_map_finished)
        self._map_worker.start()

    def _on_map_finished(self):
        self._map_worker = None
        if self._dirty and self.features is not None and self.search.decision != self.decision.currentData():
            self._new_search()
        elif self._dirty:
            self._recompute()

    def _on_map(self, result):
        score, matches, pos, neg, default_mask = result
        if self._dirty or list(pos) != list(self.positives) or list(neg) != list(self.negatives):
            return  # stale: the clicks changed while it ran (a new run follows, or the map was cleared)
        self.score_map, self.matches = score, matches
        layer = self._layer(SIMILARITY)
        finite = score[np.isfinite(score)]
        default = self.search.default_threshold(score)
        # tint only what the default threshold would select: the rest of the section stays plain seismic
        lo, hi = (default, float(finite.max())) if finite.size else (0.0, 1.0)
        limits = (lo, hi if hi > lo else lo + 1e-3)
        if layer is None:
            layer = self.viewer.add_image(score, name=SIMILARITY, colormap=dict(display.SIMILARITY_COLORMAP), blending="translucent",
                                          contrast_limits=limits, metadata={"kind": "similarity"}, **self.grid_transform())
            self._raise_points()
        else:
            layer.data = score
            layer.contrast_limits = limits
        if not self._threshold_touched:
            self._set_threshold_value(default)
        self._update_threshold_layer(default_mask)
        self.match_list.blockSignals(True)
        self.match_list.clear()
        for m in matches:
            where = m.survey if m.survey is not None else m.cube_index
            self.match_list.addItem(f"{m.rank}. il {where[0]:g}  xl {where[1]:g}  t {where[2]:g}   {m.score:.3f}")
        self.match_list.blockSignals(False)
        self._match_pos = -1
        self._say(f"map from {len(pos)} positive / {len(neg)} negative clicks; best match {matches[0].score:.3f}" if matches
                  else f"map from {len(pos)} positive / {len(neg)} negative clicks")

    def _raise_points(self):
        for name in (POSITIVE, NEGATIVE):
            layer = self._layer(name)
            if layer is not None:
                self.viewer.layers.move(self.viewer.layers.index(layer), len(self.viewer.layers))
        self.viewer.layers.selection.active = self._layer(POSITIVE)

    def undo(self):
        """Remove the latest click (positive or negative)."""
        while self._history:
            layer = self._layer(POSITIVE if self._history.pop() == "pos" else NEGATIVE)
            if layer is not None and len(layer.data):
                layer.data = layer.data[:-1]
                return

    def clear(self):
        """Remove all clicks (the similarity map goes with them)."""
        self._history.clear()
        self._threshold_touched = False
        for name in (POSITIVE, NEGATIVE):
            layer = self._layer(name)
            if layer is not None and len(layer.data):
                layer.data = np.zeros((0, 3))

    # ------------------------------------------------------------------ threshold and matches
    def threshold_value(self) -> float:
        return self.threshold.value() / SLIDER_STEPS

    def _set_threshold_value(self, t: float):
        self.threshold.blockSignals(True)
        self.threshold.setValue(int(round(_slider_value(t) * SLIDER_STEPS)))
        self.threshold.blockSignals(False)
        self.threshold_label.setText(f"threshold {self.threshold_value():.2f}")

    def set_threshold(self, t: float):
        self._threshold_touched = True
        self._set_threshold_value(t)
        self._update_threshold_layer()

    def auto_threshold(self):
        self._threshold_touched = False
        if self.score_map is not None:
            self._set_threshold_value(self.search.default_threshold(self.score_map))
            self._update_threshold_layer()

    def _on_threshold(self, value):
        self._threshold_touched = True
        self.threshold_label.setText(f"threshold {self.threshold_value():.2f}")
        self._threshold_timer.start()

    def _update_threshold_layer(self, ready=None):
        """The thresholded layer; ``ready`` = (threshold, connected, mask) from the map worker, used when it
        is the mask wanted now (no labelling on the GUI thread after a click)."""
        if self.score_map is None:
            return
        from ...search import threshold_mask

        if ready is not None and ready[0] == self.threshold_value() and ready[1] == self.connected.isChecked():
            mask = ready[2]
        else:
            mask = threshold_mask(self.score_map, self.threshold_value(), self.positives,
                                  connected=self.connected.isChecked()).astype(np.uint8)
        layer = self._layer(THRESHOLDED)
        if layer is None:
            self.viewer.add_labels(mask, name=THRESHOLDED, opacity=0.35, visible=True, **self.grid_transform())
            self._raise_points()
        else:
            layer.data = mask

    def jump_to_match(self, i: int):
        """Move the viewer's sliders to match ``i`` of the ranked list and mark it."""
        if not 0 <= i < len(self.matches):
            return
        m = self.matches[i]
        self._match_pos = i
        from ...search.coords import cube_index_to_survey

        world = m.survey if m.survey is not None else cube_index_to_survey(self.features.geometry, m.cube_index)
        self.viewer.dims.set_point(list(range(3)), list(display.to_world(self.viewer, world)))
        # a ring where the match is; the camera stays (centring on a match near an edge showed half a black view)
        marker = self._layer(MATCH)
        if marker is None:
            marker = self.viewer.add_points(np.asarray([world], float), name=MATCH, symbol="ring", face_color="yellow",
                                            size=self._marker_size(2), ndim=3, scale=self._points_scale())
            marker.editable = False
            self._raise_points()
        else:
            marker.data = np.asarray([world], float)
        if self.match_list.currentRow() != i:
            self.match_list.blockSignals(True)
            self.match_list.setCurrentRow(i)
            self.match_list.blockSignals(False)

    def next_match(self):
        if self.matches:
            self.jump_to_match((self._match_pos + 1) % len(self.matches))

    # ------------------------------------------------------------------ segmentation
    def new_training_labels(self):
        """An empty Labels layer on the feature grid to paint classes 1, 2, ... into."""
        if self.features is None:
            _notify.show_error("load a feature store first")
            return None
        layer = self.viewer.add_labels(np.zeros(self.features.shape, np.int32), name=TRAINING, **self.grid_transform())
        layer.mode = "paint"
        layer.selected_label = 1
        self.training.setCurrentText(layer.name)
        return layer

    def _training_layer(self):
        name = self.training.currentText()
        if name and name in self.viewer.layers:
            return self.viewer.layers[name]
        raise SeisfmError("no training labels: make a Labels layer (New training labels) and paint two classes or more")

    def _visible_region(self):
        """The grid slice on screen in 2D (classified first), None in 3D."""
        if self.viewer.dims.ndisplay != 2:
            return None
        axis = self.viewer.dims.not_displayed[0]
        t = self.grid_transform()
        g = int(round((self.viewer.dims.point[axis] - t["translate"][axis]) / t["scale"][axis]))
        g = int(np.clip(g, 0, self.features.shape[axis] - 1))
        region = [slice(None)] * 3
        region[axis] = slice(g, g + 1)
        return tuple(region)

    def run_knn(self):
        """Visible slice first, then the whole grid in a worker (progress, Cancel)."""
        from napari.qt.threading import create_worker

        from ...search import support_from_labels

        if self._knn_worker is not None:
            return
        try:
            if self.features is None:
                raise SeisfmError("load a feature store first")
            layer = self._training_layer()
            points, classes = support_from_labels(np.asarray(layer.data), self.features.grid,
                                                  cube_shape=self.features.cube_shape(), name=f"layer {layer.name!r}")
            n_classes = len(np.unique(classes[classes > 0]))
            if n_classes < 2:
                raise SeisfmError(f"label at least two classes (layer {layer.name!r} has {n_classes})")
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return
        self._training_colormap = layer.colormap
        self._cancel.clear()
        self.progress.setRange(0, 0)
        method = self.method.currentData()
        options = {"k": self.k.value(), "weighted": self.weighted.isChecked()} if method == "knn" else {"smooth": self.smooth.value()}
        self._knn_worker = create_worker(_segment_job, self.features, points, classes, method, options,
                                         self._visible_region(), self._relay.progressed.emit, self._cancel.is_set, _ignore_errors=True)
        self._knn_worker.yielded.connect(self._on_knn_slice)
        self._knn_worker.returned.connect(self._on_knn_done)
        self._knn_worker.errored.connect(self._on_error)
        self._knn_worker.finished.connect(self._on_knn_finished)
        self.knn_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._knn_worker.start()

    def run_facies(self):
        """k-means facies of the whole grid in a worker (progress, Cancel), shown as a Labels layer."""
        from napari.qt.threading import create_worker

        from ...search import kmeans_facies

        if self._knn_worker is not None:
            return
        if self.features is None:
            _notify.show_error("load a feature store first")
            return
        self._cancel.clear()
        self.progress.setRange(0, 0)
        self._knn_worker = create_worker(kmeans_facies, self.features, self.n_facies.value(),
                                         progress=self._relay.progressed.emit, cancel=self._cancel.is_set,
                                         _ignore_errors=True)
        self._knn_worker.returned.connect(self._on_facies)
        self._knn_worker.errored.connect(self._on_error)
        self._knn_worker.finished.connect(self._on_knn_finished)
        self.knn_button.setEnabled(False)
        self.facies_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._say(f"k-means: {self.n_facies.value()} facies ...")
        self._knn_worker.start()

    def _on_facies(self, result):
        self.facies_result = result
        layer = self._layer(FACIES)
        if layer is None:
            self.viewer.add_labels(result.classes, name=FACIES, opacity=0.5, **self.grid_transform())
            self._raise_points()
        else:
            layer.data = result.classes
        self._say(f"k-means: {len(result.counts)} facies in {result.seconds:.1f} s ({result.iterations} iterations)")

    def _show_classes(self, classes: np.ndarray):
        layer = self._layer(KNN)
        if layer is None:
            layer = self.viewer.add_labels(classes, name=KNN, opacity=0.5, **self.grid_transform())
            self._raise_points()
        else:
            layer.data = classes
        try:
            layer.colormap = self._training_colormap  # same colour per class as the painted strokes
        except Exception:  # noqa: BLE001 - colours are cosmetic; never fail the result on them
            pass

    def _on_knn_slice(self, result):
        full = np.zeros(self.features.shape, np.int32)
        full[result.region] = result.classes.reshape(full[result.region].shape)
        self._show_classes(full)
        self._say(f"{self.method.currentText()}: visible slice done, whole cube running ...")

    def _on_knn_done(self, result):
        self.knn_result = result
        self._show_classes(result.classes)
        counts = {c: int((result.classes == c).sum()) for c in result.class_ids}
        self._say(f"{self.method.currentText()}: classes {list(result.class_ids)}, grid points per class {counts}")

    def _on_knn_progress(self, done, total):
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_knn_finished(self):
        self._knn_worker = None
        self.knn_button.setEnabled(True)
        self.facies_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)

    # ------------------------------------------------------------------ export
    def export(self, kind: str, path):
        """Write the similarity map or the segmentation classes on the cube grid (SEG-Y with the source headers, .sgz, .npy, .zarr)."""
        from napari.qt.threading import create_worker

        from ...export import export_volume

        try:
            if self.features is None:
                raise SeisfmError("load a feature store first")
            if kind == SIMILARITY:
                if self.score_map is None:
                    raise SeisfmError("nothing to export: no similarity map yet (add a positive click)")
                data, labels = self.score_map, False
            else:
                layer = self._layer(KNN)
                if layer is None:
                    raise SeisfmError("nothing to export: run the segmentation first")
                data, labels = np.asarray(layer.data), True
            cube = _cube_source(self.seismic)
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return None

        def job():
            from ...cube import open_cube

            c = open_cube(cube) if isinstance(cube, str) else cube
            return export_volume(path, data, c, stride=self.features.grid.stride, origin=self.features.grid.origin, labels=labels)

        worker = create_worker(job, _ignore_errors=True)
        worker.returned.connect(lambda p: (self._say(f"wrote {p}"), _notify.show_info(f"wrote {p}")))
        worker.errored.connect(self._on_error)
        self._io_worker = worker
        worker.start()
        return worker

    def _export_dialog(self, kind):
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind}", "", "SEG-Y (*.sgy *.segy);;seismic-zfp (*.sgz);;numpy (*.npy);;zarr (*.zarr)")
        if path:
            self.export(kind, path)

    # ------------------------------------------------------------------ save / open
    def interpretation(self) -> Interpretation:
        """The current state as an :class:`Interpretation` (clicks in survey units)."""
        pos, neg = (self._layer(n) for n in (POSITIVE, NEGATIVE))
        interp = Interpretation(
            positives=[tuple(p) for p in (pos.data if pos is not None else [])],
            negatives=[tuple(p) for p in (neg.data if neg is not None else [])],
            params={"k": self.k.value(), "weighted": self.weighted.isChecked(), "threshold": self.threshold_value(),
                    "method": self.method.currentData(), "smooth": self.smooth.value(),
                    "decision": self.decision.currentData(), "connected": self.connected.isChecked()},
            features_path=self.features_path,
        )
        if self.seismic is not None:
            interp.cube_path = self.seismic.metadata.get("path")
            interp.cube_fingerprint = (self.seismic.metadata.get("geometry") or {}).get("fingerprint")
        name = self.training.currentText()
        if name and name in self.viewer.layers:
            layer = self.viewer.layers[name]
            interp.labels = np.asarray(layer.data)
            # saved in survey units: the exaggeration is a view setting, not part of the interpretation
            interp.labels_scale = tuple(float(v) for v in display.to_survey(self.viewer, layer.scale))
            interp.labels_translate = tuple(float(v) for v in display.to_survey(self.viewer, layer.translate))
            interp.labels_name = name
        return interp

    def save_interpretation(self, path) -> Path | None:
        try:
            return save_interpretation(path, self.interpretation())
        except (SeisfmError, OSError) as exc:
            _notify.show_error(f"{path}: {exc}" if isinstance(exc, OSError) else str(exc))
            return None

    def open_interpretation(self, path):
        """Restore clicks, labels and parameters (the features must be loaded; the map recomputes)."""
        try:
            if self.features is None:
                raise SeisfmError("load the feature store of this interpretation first")
            fp = (self.seismic.metadata.get("geometry") or {}).get("fingerprint")
            interp = load_interpretation(path, fingerprint=fp)
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return None
        p = interp.params
        self.k.setValue(int(p.get("k") or 5))
        self.weighted.setChecked(bool(p.get("weighted")))
        # files from before the probe and the linear method were the centroid and kNN
        self.method.setCurrentIndex(max(self.method.findData(p.get("method", "knn")), 0))
        self.smooth.setValue(float(p.get("smooth", SMOOTH)))
        self.decision.setCurrentIndex(max(self.decision.findData(p.get("decision", "centroid")), 0))
        self.connected.setChecked(bool(p.get("connected", False)))
        if p.get("threshold") is not None:
            self.set_threshold(float(p["threshold"]))
        self._history = ["pos"] * len(interp.positives) + ["neg"] * len(interp.negatives)
        for name, pts in ((POSITIVE, interp.positives), (NEGATIVE, interp.negatives)):
            self._layer(name).data = np.asarray(pts, float).reshape(-1, 3)
        if interp.labels is not None:
            if interp.labels_scale is not None:
                kw = {"scale": tuple(display.to_world(self.viewer, interp.labels_scale)),
                      "translate": tuple(display.to_world(self.viewer, interp.labels_translate))}
            elif interp.labels.shape == tuple(self.features.shape):  # no placement saved: infer it from the shape
                kw = {k: v for k, v in self.grid_transform().items() if k != "axis_labels"}
            else:
                kw = {"scale": self.seismic.scale, "translate": self.seismic.translate}
            layer = self._layer(interp.labels_name)
            if layer is not None and type(layer).__name__ == "Labels" and layer.data.shape == interp.labels.shape:
                layer.data = interp.labels
            else:
                layer = self.viewer.add_labels(interp.labels, name=interp.labels_name, **kw)
            self.training.setCurrentText(layer.name)
        self._say(f"opened {path}: {len(interp.positives)} positive, {len(interp.negatives)} negative clicks")
        return interp

    def _save_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save interpretation", "", "Interpretation (*.json)")
        if path:
            p = self.save_interpretation(path)
            if p:
                _notify.show_info(f"saved {p}")

    def _open_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open interpretation", "", "Interpretation (*.json)")
        if path:
            self.open_interpretation(path)

    # ------------------------------------------------------------------ errors
    def _on_error(self, exc):
        message = report(exc, "click-to-map")
        if isinstance(exc, SeisfmError):
            self._say(message)



# ---------------------------------------------------------------------- worker bodies (no Qt)
def _compute_map(search, positives, negatives, n_matches, connected):
    """The map, its matches and the mask at the default threshold (as the slider will show it): the
    connected-bodies labelling of a whole cube takes ~0.1 s at 256^3, so it is done here, off the GUI thread."""
    from ...search import threshold_mask

    sync_clicks(search, positives, negatives)
    score = search.score_map().copy()
    threshold = _slider_value(search.default_threshold(score))
    mask = threshold_mask(score, threshold, search.positives, connected=connected)
    return score, search.top_matches(n_matches), positives, negatives, (threshold, connected, mask.astype(np.uint8))


def _slider_value(t: float) -> float:
    """The threshold the slider can show for ``t`` (hundredths, floored, within -2..2)."""
    return int(np.clip(np.floor(t * SLIDER_STEPS), -2 * SLIDER_STEPS, 2 * SLIDER_STEPS)) / SLIDER_STEPS


NUMPY_KNN_POINTS = 1 << 18  # grids up to 64^3: the whole-grid kNN in numpy beats a cold `import torch` (seconds)


def _segment_job(features, points, classes, method, options, region, progress, cancel):
    """The visible slice first, then the whole grid. kNN's slice (and a small grid) runs on the numpy
    backend: torch's kernels are faster on a big grid, but importing torch takes seconds on a cold start,
    and nothing would be on screen meanwhile."""
    from ...search import make_segmenter

    quick = {**options, "backend": "numpy"} if method == "knn" else options
    seg = make_segmenter(features, points, classes, method, **quick)
    if region is not None:
        yield seg.segment_region(region)
    if method == "knn" and features.grid.size > NUMPY_KNN_POINTS:
        seg = make_segmenter(features, points, classes, method, **options)
    return seg.segment(progress=progress, cancel=cancel)
