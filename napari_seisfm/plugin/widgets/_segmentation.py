"""The "Segmentation" box of the Click-to-map dock: painted labels -> classes, and k-means facies.

Both run through the box's JobController (progress, Cancel, teardown when the viewer closes) and the
dock's session (:meth:`~napari_seisfm.session.ClickToMapSession.segment` / ``facies``); the classes of
the section on screen come first, over a queued signal from the job's thread.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout

from ...display import KNN
from ...errors import SeisfmError
from ...search import DEFAULT_SEGMENTER, SEGMENTERS
from ...search.linear_segmenter import SMOOTH
from ...session import SegmentationSettings, run_to_end
from . import _notify
from ._jobs import JobController

TRAINING = "training labels"
FACIES = "facies (k-means)"
LABELS = {"linear": "linear + smoothing", "forest": "random forest", "boosting": "gradient boosting", "mlp": "small MLP",
          "conv": "conv head (torch)", "knn": "kNN (paper's protocol)"}
METHODS = [(LABELS.get(m, m), m) for m in SEGMENTERS]  # every read-out by name (search/methods.py)


class _Relay(QObject):
    slice_done = Signal(object)


class SegmentationBox(QGroupBox):
    def __init__(self, dock):
        """``dock``: the Click-to-map dock (its viewer, session, grid placement, status line)."""
        super().__init__("Segmentation")
        self.dock = dock
        self.viewer = dock.viewer
        self.knn_result = self.facies_result = None
        self._training_colormap = None
        self._relay = _Relay()
        self._relay.slice_done.connect(self._on_slice)

        self.training = QComboBox()
        self.new_labels_button = QPushButton("New training labels")
        self.method = ComboBox(choices=METHODS, value=DEFAULT_SEGMENTER, label="method")
        self.smooth = FloatSpinBox(value=SMOOTH, min=0.0, max=10.0, step=0.5, label="smoothing",
                                   tooltip="Gaussian smoothing of the class probabilities, in grid points (0: none)")
        self.k = SpinBox(value=5, min=1, max=100, label="k")
        self.weighted = CheckBox(value=False, text="distance-weighted")
        self.n_facies = SpinBox(value=8, min=2, max=64, label="facies k")
        self.knn_button = QPushButton("Segment")
        self.facies_button = QPushButton("Facies (k-means)")
        self.facies_button.setToolTip("unsupervised: cluster every grid point's vector into k facies (no labels needed)")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.legend = QLabel("")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow("labels", self.training)
        form.addRow("", self.new_labels_button)
        layout.addLayout(form)
        layout.addWidget(Container(widgets=[self.method, self.smooth, self.k, self.weighted, self.n_facies]).native)
        row = QHBoxLayout()
        for b in (self.knn_button, self.facies_button, self.cancel_button):
            row.addWidget(b)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.legend)

        self.jobs = JobController(self, run_buttons=[self.knn_button, self.facies_button], cancel_button=self.cancel_button,
                                  progress_bar=self.progress, what="segmentation", viewer=self.viewer)
        self.method.changed.connect(self._method_changed)
        for w in (self.k, self.weighted, self.smooth):
            w.changed.connect(self.apply_settings)
        self.new_labels_button.clicked.connect(self.new_training_labels)
        self.knn_button.clicked.connect(lambda: self.run_knn())
        self.facies_button.clicked.connect(lambda: self.run_facies())
        self._method_changed()

    # ------------------------------------------------------------------ settings
    def _method_changed(self, value=None):
        knn = self.method.value == "knn"
        self.k.enabled = self.weighted.enabled = knn
        self.smooth.enabled = not knn
        self.apply_settings()

    def apply_settings(self, value=None):
        """The form -> the session's segmentation settings (saved with the interpretation)."""
        if self.dock.session is not None:
            self.dock.session.segmentation = SegmentationSettings(self.method.value, self.k.value, self.weighted.value,
                                                                  self.smooth.value)

    def show_settings(self, s: SegmentationSettings):
        """The session's settings -> the form (an interpretation was opened)."""
        for widget, value in ((self.method, s.method), (self.k, s.k), (self.weighted, s.weighted), (self.smooth, s.smooth)):
            with widget.changed.blocked():
                widget.value = value
        self._method_changed()

    def refresh_labels(self, exclude=()):
        """List the Labels layers one can paint training classes into."""
        current = self.training.currentText()
        self.training.clear()
        self.training.addItems([layer.name for layer in self.viewer.layers
                                if type(layer).__name__ == "Labels" and layer.name not in (KNN, FACIES, *exclude)])
        if current:
            self.training.setCurrentText(current)

    # ------------------------------------------------------------------ training labels
    def new_training_labels(self):
        """An empty Labels layer on the feature grid to paint classes 1, 2, ... into."""
        if self.dock.session is None:
            _notify.show_error("load a feature store first")
            return None
        layer = self.viewer.add_labels(np.zeros(self.dock.session.features.shape, np.int32), name=TRAINING,
                                       **self.dock.grid_transform())
        layer.mode = "paint"
        layer.selected_label = 1
        self.training.setCurrentText(layer.name)
        return layer

    def training_layer(self):
        name = self.training.currentText()
        if name and name in self.viewer.layers:
            return self.viewer.layers[name]
        raise SeisfmError("no training labels: make a Labels layer (New training labels) and paint two classes or more")

    # ------------------------------------------------------------------ jobs
    def run_knn(self):
        """Visible slice first, then the whole grid, in the box's job (progress, Cancel, teardown)."""
        session = self.dock.session
        if self.jobs.running:
            return
        try:
            if session is None:
                raise SeisfmError("load a feature store first")
            layer = self.training_layer()
            points, classes = session.support(np.asarray(layer.data), name=f"layer {layer.name!r}")
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return
        self._training_colormap = layer.colormap
        self.dock._say(f"{self.method.current_choice}: visible slice first ...")
        region, relay, jobs = self.dock.visible_region(), self._relay, self.jobs

        def job():
            steps = session.segment(points, classes, region=region, progress=jobs.report, cancel=jobs.cancel_event.is_set)
            if region is not None:
                relay.slice_done.emit(next(steps))
            return run_to_end(steps)

        self.jobs.start(job, on_done=self._on_segmentation)

    def run_facies(self):
        """k-means facies of the whole grid in the box's job (progress, Cancel), shown as a Labels layer."""
        if self.jobs.running:
            return
        if self.dock.session is None:
            _notify.show_error("load a feature store first")
            return
        self.dock._say(f"k-means: {self.n_facies.value} facies ...")
        self.jobs.start(self.dock.session.facies, self.n_facies.value, progress=self.jobs.report,
                        cancel=self.jobs.cancel_event.is_set, on_done=self._on_facies)

    # ------------------------------------------------------------------ results
    def _show_labels(self, name, classes, opacity=0.5):
        layer = self.dock._layer(name)
        if layer is None:
            layer = self.viewer.add_labels(classes, name=name, opacity=opacity, **self.dock.grid_transform())
            self.dock._raise_points()
        else:
            layer.data = classes
        return layer

    def _show_classes(self, classes: np.ndarray):
        layer = self._show_labels(KNN, classes)
        try:
            layer.colormap = self._training_colormap  # same colour per class as the painted strokes
        except Exception:  # noqa: BLE001 - colours are cosmetic; never fail the result on them
            pass
        return layer

    def _on_slice(self, result):
        if self.jobs.closed:  # the dock or the viewer went while the job ran
            return
        full = np.zeros(self.dock.session.features.shape, np.int32)
        full[result.region] = result.classes.reshape(full[result.region].shape)
        self._show_classes(full)
        self.dock._say(f"{self.method.current_choice}: visible slice done, whole cube running ...")

    def _on_segmentation(self, result):
        self.knn_result = result
        layer = self._show_classes(result.classes)
        self.legend.setText(legend_html(layer, result.classes, result.class_ids))
        counts = {c: int((result.classes == c).sum()) for c in result.class_ids}
        self.dock._say(f"{self.method.current_choice}: classes {list(result.class_ids)}, grid points per class {counts}")

    def _on_facies(self, result):
        self.facies_result = result
        layer = self._show_labels(FACIES, result.classes)
        self.legend.setText(legend_html(layer, result.classes, range(1, len(result.counts) + 1), "facies"))
        self.dock._say(f"k-means: {len(result.counts)} facies in {result.seconds:.1f} s ({result.iterations} iterations)")


def legend_html(layer, classes: np.ndarray, class_ids, word: str = "class") -> str:
    """A swatch per class in the layer's own colour, with its share of the grid (napari Labels have no legend)."""
    total = max(int((classes > 0).sum()), 1)
    rows = []
    for c in class_ids:
        rgba = np.asarray(layer.get_color(int(c)) if hasattr(layer, "get_color") else (0.5, 0.5, 0.5, 1.0), float)
        colour = "#" + "".join(f"{int(round(255 * v)):02x}" for v in rgba[:3])
        share = 100 * int((classes == c).sum()) / total
        rows.append(f'<span style="color:{colour}">&#9632;</span> {word} {int(c)}: {share:.0f}%')
    return "&nbsp;&nbsp; ".join(rows)
