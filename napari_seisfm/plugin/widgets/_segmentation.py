"""The "Segmentation" box of the Click-to-map dock: painted labels -> classes, and k-means facies.

Both run through the box's JobController (progress, Cancel, teardown when the viewer closes) and the
dock's session (:meth:`~napari_seisfm.session.ClickToMapSession.segment` / ``facies``); the classes of
the section on screen come first, over a queued signal from the job's thread.

The result is readable: a legend lists each class with its colour (the painted strokes' own), its name
(from the training labels: a ground truth's class names, or names typed here, kept in the training layer)
and its share of the grid. The largest class, the background of most sections, is drawn transparent by
default so the seismic reads through; its tick in the legend shows it. Hovering the overlay shows the
class name in napari's status bar.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtGui import QColor, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ...display import KNN
from ...errors import SeisfmError
from ...search import DEFAULT_SEGMENTER, SEGMENTERS
from ...search.linear_segmenter import SMOOTH
from ...session import SegmentationSettings, run_to_end
from . import _notify
from ._jobs import JobController

TRAINING = "training labels"
FACIES = "facies (k-means)"
LABELS = {
    "linear": "linear + smoothing",
    "forest": "random forest",
    "boosting": "gradient boosting",
    "mlp": "small MLP",
    "conv": "conv head (torch)",
    "knn": "kNN (paper's protocol)",
}
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
        self._training = None  # the training labels layer of the last run (its colours and class names)
        self._relay = _Relay()
        self._relay.slice_done.connect(self._on_slice)

        self.training = QComboBox()
        self.new_labels_button = QPushButton("New training labels")
        self.method = ComboBox(choices=METHODS, value=DEFAULT_SEGMENTER, label="method")
        self.smooth = FloatSpinBox(
            value=SMOOTH,
            min=0.0,
            max=10.0,
            step=0.5,
            label="smoothing",
            tooltip="Gaussian smoothing of the class probabilities, in grid points (0: none)",
        )
        self.k = SpinBox(value=5, min=1, max=100, label="k")
        self.weighted = CheckBox(value=False, text="distance-weighted")
        self.n_facies = SpinBox(value=8, min=2, max=64, label="facies k")
        self.knn_button = QPushButton("Segment")
        self.facies_button = QPushButton("Facies (k-means)")
        self.facies_button.setToolTip("unsupervised: cluster every grid point's vector into k facies (no labels needed)")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.legend = ClassLegend()
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

        self.jobs = JobController(
            self,
            run_buttons=[self.knn_button, self.facies_button],
            cancel_button=self.cancel_button,
            progress_bar=self.progress,
            what="segmentation",
            viewer=self.viewer,
            on_detail=self.dock.say,
        )
        self.legend.changed.connect(self._legend_changed)
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
            self.dock.session.segmentation = SegmentationSettings(
                self.method.value, self.k.value, self.weighted.value, self.smooth.value
            )

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
        self.training.addItems(
            [
                layer.name
                for layer in self.viewer.layers
                if type(layer).__name__ == "Labels" and layer.name not in (KNN, FACIES, *exclude)
            ]
        )
        if current:
            self.training.setCurrentText(current)

    # ------------------------------------------------------------------ training labels
    def new_training_labels(self):
        """An empty Labels layer on the feature grid to paint classes 1, 2, ... into."""
        if self.dock.session is None:
            _notify.show_error("load a feature store first")
            return None
        layer = self.viewer.add_labels(
            np.zeros(self.dock.session.features.shape, np.int32), name=TRAINING, **self.dock.layer_kwargs()
        )
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
        self._training = layer
        self.dock.say(f"{self.method.current_choice}: visible slice first ...")
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
        self.dock.say(f"k-means: {self.n_facies.value} facies ...")
        self.jobs.start(
            self.dock.session.facies,
            self.n_facies.value,
            progress=self.jobs.report,
            cancel=self.jobs.cancel_event.is_set,
            on_done=self._on_facies,
        )

    # ------------------------------------------------------------------ results
    def _show_labels(self, name, classes, opacity=0.6):
        layer = self.dock._layer(name)
        if layer is None:
            layer = self.viewer.add_labels(classes, name=name, opacity=opacity, **self.dock.layer_kwargs())
            self.dock._raise_points()
        else:
            layer.data = classes
        return layer

    def _colours(self, class_ids) -> dict:
        """Each class's colour: the training strokes' own (the segmentation looks like what was painted)."""
        training = getattr(self, "_training", None)
        out = {}
        for c in class_ids:
            rgba = None
            if training is not None:
                try:
                    rgba = training.get_color(int(c))
                except Exception:  # noqa: BLE001 - colours are cosmetic; fall back to napari's cycle
                    rgba = None
            out[int(c)] = np.asarray(rgba if rgba is not None else _cycle_colour(int(c)), float)
        return out

    def _show_classes(self, classes: np.ndarray, class_ids=None):
        layer = self._show_labels(KNN, classes)
        ids = [int(c) for c in (class_ids if class_ids is not None else np.unique(classes[classes > 0]))]
        names = class_names(getattr(self, "_training", None), ids)
        self.legend.show_classes(ids, names, self._colours(ids), classes, layer=layer)
        return layer

    def _on_slice(self, result):
        if self.jobs.closed:  # the dock or the viewer went while the job ran
            return
        full = np.zeros(self.dock.session.features.shape, np.int32)
        full[result.region] = result.classes.reshape(full[result.region].shape)
        self._show_classes(full)
        self.dock.say(f"{self.method.current_choice}: visible slice done, whole cube running ...")

    def _on_segmentation(self, result):
        self.knn_result = result
        self._show_classes(result.classes, result.class_ids)
        hidden = self.legend.hidden_names()
        note = f"; {', '.join(hidden)} drawn transparent (tick it in the legend to show it)" if hidden else ""
        self.dock.say(f"{self.method.current_choice}: {len(result.class_ids)} classes over the whole grid{note}")

    def _on_facies(self, result):
        self.facies_result = result
        layer = self._show_labels(FACIES, result.classes)
        ids = list(range(1, len(result.counts) + 1))
        colours = {c: np.asarray(layer.get_color(c), float) for c in ids}
        self.legend.show_classes(ids, {c: f"facies {c}" for c in ids}, colours, result.classes, layer=layer, hide_largest=False)
        self.dock.say(f"k-means: {len(result.counts)} facies in {result.seconds:.1f} s ({result.iterations} iterations)")

    def _legend_changed(self):
        """Names typed in the legend go to the training layer (saved with it) and the overlay's status text."""
        training = getattr(self, "_training", None)
        layer = self.legend.layer
        if training is not None and layer is not None and layer.name == KNN:
            training.metadata["class_names"] = {str(k): v for k, v in self.legend.names().items()}


def class_names(training, class_ids) -> dict[int, str]:
    """Names of the classes: typed in the legend before, a ground truth's own (``metadata["classes"]``,
    name -> id), else "class N"."""
    md = getattr(training, "metadata", None) or {}
    typed = {int(k): str(v) for k, v in (md.get("class_names") or {}).items()}
    truth = {int(v): str(k) for k, v in (md.get("classes") or {}).items() if isinstance(v, (int, np.integer))}
    return {int(c): typed.get(int(c)) or truth.get(int(c)) or f"class {int(c)}" for c in class_ids}


def _cycle_colour(c: int):
    from napari.utils.colormaps import label_colormap

    return label_colormap().map(c)


class ClassLegend(QTableWidget):
    """Show | colour and name (editable) | share of the grid, one row per class; drives the overlay's colours
    (hidden classes transparent) and its hover text."""

    changed = Signal()

    def __init__(self):
        super().__init__(0, 3)
        self.setHorizontalHeaderLabels(["show", "class", "share"])
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col in (0, 2):
            self.horizontalHeader().setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setMaximumHeight(150)
        self.setToolTip("double-click a name to rename the class; untick a class to draw it transparent")
        self.layer = None
        self._ids: list[int] = []
        self._colours: dict = {}
        self._filling = False
        self.itemChanged.connect(self._on_item)

    def show_classes(self, class_ids, names: dict, colours: dict, classes: np.ndarray, *, layer, hide_largest=True):
        self.layer, self._ids, self._colours = layer, [int(c) for c in class_ids], colours
        counts = {c: int((classes == c).sum()) for c in self._ids}
        total = max(sum(counts.values()), 1)
        keep = {c for c in self._ids if self._shown().get(c, True)} if self.rowCount() == len(self._ids) else None
        largest = max(self._ids, key=lambda c: counts[c]) if hide_largest and len(self._ids) > 1 else None
        self._filling = True
        try:
            self.setRowCount(len(self._ids))
            for row, c in enumerate(self._ids):
                show = QTableWidgetItem()
                show.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                visible = (c in keep) if keep is not None else c != largest
                show.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
                show.setData(Qt.ItemDataRole.UserRole, c)
                name = QTableWidgetItem(names.get(c, f"class {c}"))
                name.setFlags(Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsEnabled)
                name.setData(Qt.ItemDataRole.DecorationRole, _swatch(colours[c]))
                share = QTableWidgetItem(f"{100 * counts[c] / total:.0f}%")
                share.setFlags(Qt.ItemFlag.ItemIsEnabled)
                for col, item in enumerate((show, name, share)):
                    self.setItem(row, col, item)
        finally:
            self._filling = False
        self.apply()

    def _shown(self) -> dict:
        out = {}
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None:
                out[int(item.data(Qt.ItemDataRole.UserRole))] = item.checkState() == Qt.CheckState.Checked
        return out

    def names(self) -> dict[int, str]:
        return {c: self.item(row, 1).text() for row, c in enumerate(self._ids) if self.item(row, 1) is not None}

    def hidden_names(self) -> list[str]:
        names, shown = self.names(), self._shown()
        return [names[c] for c in self._ids if not shown.get(c, True)]

    def apply(self):
        """The overlay's colours (hidden classes and 0 transparent) and the names it shows on hover."""
        if self.layer is None:
            return
        from napari.utils.colormaps import DirectLabelColormap

        shown, names = self._shown(), self.names()
        colours = {None: np.zeros(4), 0: np.zeros(4)}
        for c in self._ids:
            rgba = np.array(self._colours[c], float)
            rgba[3] = 1.0 if shown.get(c, True) else 0.0
            colours[c] = rgba
        try:
            self.layer.colormap = DirectLabelColormap(color_dict=colours)
            import pandas as pd

            self.layer.features = pd.DataFrame({"index": self._ids, "class": [names[c] for c in self._ids]})
        except (RuntimeError, ValueError):  # the layer went meanwhile
            return

    def _on_item(self, item):
        if self._filling:
            return
        self.apply()
        self.changed.emit()


def _swatch(rgba) -> QPixmap:
    pix = QPixmap(12, 12)
    pix.fill(QColor.fromRgbF(*(float(v) for v in np.asarray(rgba, float)[:3]), 1.0))
    return pix
