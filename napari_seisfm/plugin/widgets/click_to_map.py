"""Dock widget "Click-to-map": a view over :class:`napari_seisfm.session.ClickToMapSession`.

The session holds the interpretation (clicks in survey units, undo, threshold policy, the map, matches,
segmentation, save/open); this widget wires napari layers and Qt controls to it:

- "Positive" (green) and "Negative" (magenta) Points in survey coordinates: their data goes to the session
  on every edit; a click the session refuses (outside the volume, no vector) is removed with a message.
  A click is drawn on every slice where it counts (the grid point it snapped to reaches half a stride
  either side): napari's thick slices with ``projection_mode="rescale_linear"``, so off its own slice it is
  drawn smaller, shrinking to nothing where it stops counting. The match ring does the same.
- "similarity" Image and "similarity > threshold" Labels on the feature grid (``scale = stride * spacing``),
  "segmentation" and "facies (k-means)" Labels, a ring at the match being looked at.

Every job runs through a :class:`._jobs.JobController`: loading a store, exports and the library search on
the dock's own (Cancel, progress), maps on a lane of their own (computed in a worker as soon as a click
lands; clicks made while one runs coalesce into one more run; a result that comes back after the clicks
changed is dropped by the session and the next one follows), segmentation and facies on the Segmentation
box's.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSlider,
    QVBoxLayout,
)

from ... import display
from ...display import SIMILARITY, THRESHOLDED
from ...errors import SeisfmError
from ...session import THRESHOLD_RANGE, THRESHOLD_STEP, ClickToMapSession
from .. import view
from . import _notify
from ._display import DisplayBox
from ._dock import Dock, form
from ._files import FilesBox
from ._jobs import JobController
from ._layers import fingerprint_of, is_cube_layer, with_browse
from ._library import LibraryBox
from ._segmentation import SegmentationBox

POSITIVE, NEGATIVE = "Positive", "Negative"
MATCH = "match"
DECISIONS = [("probe learned from the clicks", "probe"), ("centroid similarity", "centroid")]
THRESHOLD_REST_MS = 80
NO_POSITIVE = "No positive click yet: click the feature on the Positive layer"
MARKER_PIXELS = (4, 30)  # click markers on screen: never a blot; small off their slice (projection shrinks them)
OFF_SLICE_ALPHA = 0.45  # a click seen from a nearby section: fainter as well as smaller
MARKER_CELLS = 1.5  # a click marker on its own slice: this many grid cells across
PREVIEW_POINTS = 1 << 20  # grids larger than this (~100^3) show the section on screen before the whole map


class ClickToMapWidget(Dock):
    what = "click-to-map"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer, run_text="Load features")
        self.session: ClickToMapSession | None = None
        self.seismic = None  # the seismic layer the session's features belong to
        self._match_pos = -1
        self._syncing = False  # writing the session's clicks back into the Points layers
        self._dirty = False  # the clicks changed while a map worker ran
        self.load_button = self.run_button
        # maps: a lane of their own (no buttons; a new click never waits for an export)
        self.maps = JobController(self, what="click-to-map", viewer=napari_viewer)
        # the mask follows the slider once it rests: on a 256^3 grid each mask costs ~0.15 s (compare + labelling)
        self._threshold_timer = self._single_shot(THRESHOLD_REST_MS, self._show_mask)

        # --- inputs
        self.cube = self.layer_picker("seismic", is_cube_layer, tooltip="the seismic layer the features were extracted from")
        self.store = QComboBox()
        self.store.setEditable(True)
        self.store.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.store.setMinimumContentsLength(12)  # a long path never widens the dock
        self.store.setToolTip("feature store (.zarr) of this cube; feature layers opened in napari are listed")
        self.store.lineEdit().setPlaceholderText("FEATURES.zarr (made by Extract embeddings)")
        inputs = QFormLayout()
        inputs.addRow("features", with_browse(self.store, self._browse_store, "choose a feature store (.zarr folder)"))

        # --- click-to-map: parameters as a magicgui form, then the slider, click and match controls
        self.decision = ComboBox(
            choices=DECISIONS,
            label="decision",
            tooltip=(
                "probe: a logistic regression fitted to the clicks (map = probability of the target); "
                "centroid: mean cosine to the positive clicks minus mean cosine to the negatives"
            ),
        )
        self.connected = CheckBox(value=True, text="only bodies connected to the positive clicks")
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(*(int(round(v / THRESHOLD_STEP)) for v in THRESHOLD_RANGE))
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
        sl.addWidget(Container(widgets=[self.decision, self.connected]).native)
        sl.addLayout(_row(self.threshold_label, self.threshold, self.auto_button))
        sl.addLayout(_row(self.undo_button, self.clear_button))
        sl.addWidget(QLabel("top matches (one per body)"))
        sl.addWidget(self.match_list)
        sl.addWidget(self.next_button)

        self.segmentation = SegmentationBox(self)
        self.display = DisplayBox(self.viewer, self._seismic_layer)
        self.files = FilesBox(self)
        self.library = LibraryBox(self)

        self.body.addWidget(form(self.cube).native)
        self.body.addLayout(inputs)
        self.add_job_row()
        for box in (self.display, sim, self.library, self.segmentation, self.files):
            self.body.addWidget(box)
        self.body.addStretch()
        # one dock job at a time (load, export, library search): their buttons wait while one runs
        self.jobs.run_buttons = (
            self.load_button,
            self.library.search_button,
            self.files.export_sim_button,
            self.files.export_knn_button,
        )

        self.load_button.clicked.connect(lambda: self.load_features())
        self.decision.changed.connect(self._decision_changed)
        self.connected.changed.connect(self._connected_changed)
        self.threshold.valueChanged.connect(self._on_slider)
        self.auto_button.clicked.connect(self.auto_threshold)
        self.undo_button.clicked.connect(self.undo)
        self.clear_button.clicked.connect(self.clear)
        self.match_list.currentRowChanged.connect(lambda i: self.jump_to_match(i) if i >= 0 else None)
        self.next_button.clicked.connect(self.next_match)
        self.cube.changed.connect(lambda *_: self.display.sync())
        self.reset_choices()
        self._show_threshold(0.9)
        self.say("Load a feature store of the seismic cube (Extract embeddings makes one).")

    def _single_shot(self, ms, slot) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(lambda: slot())
        return timer

    # ------------------------------------------------------------------ what the tests and scripts read
    @property
    def features(self):
        return None if self.session is None else self.session.features

    @property
    def result(self):
        return None if self.session is None else self.session.result

    @property
    def map_running(self) -> bool:
        return self.maps.running

    @property
    def survey(self) -> str | None:
        """The survey the session's layers belong to (their vertical exaggeration)."""
        if self.session is not None:
            return self.session.cube_fingerprint
        layer = self.cube.value
        return view.survey_of(layer) if layer is not None else None

    # ------------------------------------------------------------------ inputs
    def reset_choices(self, *_):
        super().reset_choices()
        if not hasattr(self, "store"):
            return
        paths = [
            layer.metadata["path"]
            for layer in self.viewer.layers
            if layer.metadata.get("kind") == "features" and layer.metadata.get("path")
        ]
        for p in paths:
            if self.store.findText(p) < 0:
                self.store.addItem(p)
        if not self.store.currentText() and paths:
            self.store.setCurrentText(paths[0])
        self.segmentation.refresh_labels(exclude=(THRESHOLDED,))
        self.display.sync()

    def _browse_store(self):
        path = QFileDialog.getExistingDirectory(self, "Feature store (.zarr directory)")
        if path:
            self.store.setCurrentText(path)

    def _seismic_layer(self):
        layer = self.cube.value
        if layer is None or layer not in self.viewer.layers:
            raise SeisfmError("no seismic layer: open a cube first")
        return layer

    def _layer(self, name):
        layers = self.viewer.layers
        return layers[name] if name in layers else None  # noqa: SIM401 - napari's LayerList has no .get

    def offer_store(self, path, layer) -> str | None:
        """A store just extracted from ``layer``'s cube (the Extract dock): chosen here, and loaded when no
        session is loaded yet. Returns "loading", "chosen" or None (this dock shows another cube)."""
        try:
            seismic = self._seismic_layer()
        except SeisfmError:
            seismic = None
        if seismic is not None and fingerprint_of(seismic) != fingerprint_of(layer):
            return None
        if seismic is None:
            self.cube.value = layer
        self.store.setCurrentText(str(path))
        if self.session is None and not self.jobs.running:
            self.load_features(path)
            return "loading"
        self.say(f"new feature store {path}: press Load features to use it")
        return "chosen"

    # ------------------------------------------------------------------ features -> session
    def load_features(self, path=None):
        """Open a session on the feature store in a worker; a store of another cube is refused (fingerprint)."""
        try:
            seismic = self._seismic_layer()
            path = str(path or self.store.currentText()).strip()
            if not path:
                raise SeisfmError("choose a feature store (.zarr) first")
        except SeisfmError as exc:
            self.error(exc)
            return
        self.store.setCurrentText(path)
        self.say(f"loading {path} ...")
        options = {
            "fingerprint": fingerprint_of(seismic),
            "cube_path": seismic.metadata.get("path"),
            "decision": self.decision.value,
            "connected": self.connected.value,
        }

        def load():  # the decision's one-off work too (seconds on a big grid): the first click is as quick as the next
            return ClickToMapSession.open(path, **options).prepared()

        self.jobs.start(load, on_done=lambda s: self._on_session(s, seismic))

    def _on_session(self, session: ClickToMapSession, seismic):
        self.session, self.seismic = session, seismic
        session.clicks_changed.connect(self._recompute)  # at once: clicks during a run coalesce into one more run
        session.map_changed.connect(self._show_map)
        self.segmentation.apply_settings()
        self._ensure_points_layers()
        view.on_exaggeration(self.viewer, lambda survey, _: self.show_clicks_across_slices() if survey == self.survey else None)
        fm = session.features
        self.say(f"{fm.grid.shape} grid, stride {fm.grid.stride}, {fm.dim}-d {fm.dtype}. " + NO_POSITIVE)
        self._sync_from_layers()

    def grid_transform(self) -> dict:
        """scale/translate of a layer on the feature grid (survey units, the survey's exaggeration)."""
        fm = self.session.features
        return display.world_transform(
            fm.cube_geometry, fm.grid.stride, fm.grid.origin, exaggeration=view.exaggeration(self.viewer, self.survey)
        )

    def layer_kwargs(self, **metadata) -> dict:
        """What every layer this dock adds on the feature grid carries: placement and its survey."""
        return {**self.grid_transform(), "metadata": {"survey": self.survey, **metadata}}

    def _points_scale(self) -> tuple[float, float, float]:
        """Points layers hold survey coordinates; their scale carries the exaggeration (world = data x scale)."""
        return (1.0, 1.0, view.exaggeration(self.viewer, self.survey))

    def _marker_size(self, cells: float = MARKER_CELLS) -> float:
        """Points ``size`` for ``cells`` grid cells on screen (napari scales a point's size by the last axis' scale)."""
        return cells * max(self.grid_transform()["scale"]) / self._points_scale()[2]

    def _ensure_points_layers(self):
        for name, colour in ((POSITIVE, "lime"), (NEGATIVE, "magenta")):
            layer = self._layer(name)
            if layer is None:
                layer = self.viewer.add_points(
                    np.zeros((0, 3)),
                    ndim=3,
                    name=name,
                    face_color=colour,
                    border_color="white",
                    size=self._marker_size(),
                    projection_mode="rescale_linear",
                    scale=self._points_scale(),
                    canvas_size_limits=MARKER_PIXELS,
                    metadata={"survey": self.survey},
                )
                layer.events.data.connect(self._on_points_event)
            layer.current_face_color = colour
        self.show_clicks_across_slices()
        self.viewer.layers.selection.active = self._layer(POSITIVE)
        if not getattr(self, "_fading", False):
            self._fading = True
            self.viewer.dims.events.point.connect(lambda *_: self.fade_off_slice())

    def show_clicks_across_slices(self):
        """Thick slices as deep as a click's reach: the grid point a click snapped to is used on the sections
        within half a stride of it, so the click is drawn there too (smaller off its own section)."""
        if self.session is None:
            return
        t = self.grid_transform()
        # the reach plus one section, so a click on the last section where it counts still shows (small)
        spacing = np.asarray(t["scale"], float) / np.asarray(self.session.features.grid.stride, float)
        margins = tuple(float(s / 2 + d) for s, d in zip(t["scale"], spacing))
        self.viewer.dims.margin_left = margins
        self.viewer.dims.margin_right = margins

    def fade_off_slice(self):
        """Clicks on the section on screen opaque, those seen from a nearby section faint (napari's projection
        already draws them smaller)."""
        if self.viewer.dims.ndisplay != 2:
            return
        axis = self.viewer.dims.not_displayed[0]
        here = self.viewer.dims.point[axis]
        half = 0.5 * abs(float(self._seismic_layer().scale[axis])) if self.cube.value is not None else 0.5
        for name in (POSITIVE, NEGATIVE, MATCH):
            layer = self._layer(name)
            if layer is None or not len(layer.data):
                continue
            world = np.asarray(layer.data, float)[:, axis] * layer.scale[axis] + layer.translate[axis]
            alpha = np.where(np.abs(world - here) <= half, 1.0, OFF_SLICE_ALPHA)
            colours = np.array(layer.face_color, float)
            if colours.shape[0] == len(alpha) and not np.allclose(colours[:, 3], alpha):
                colours[:, 3] = alpha
                layer.face_color = colours

    # ------------------------------------------------------------------ clicks
    def _on_points_event(self, event):
        if not self._syncing and getattr(event, "action", None) in ("added", "removed", "changed"):
            QTimer.singleShot(0, self._sync_from_layers)  # after napari has finished its own bookkeeping
            QTimer.singleShot(0, self.fade_off_slice)

    def _sync_from_layers(self):
        """Points layers -> session; clicks it refuses are taken off the layers with the reason."""
        if self.session is None:
            return
        pos, neg = (self._layer(n) for n in (POSITIVE, NEGATIVE))
        refused = self.session.set_clicks(
            *(np.asarray(layer.data if layer is not None else np.zeros((0, 3)), float) for layer in (pos, neg))
        )
        if refused:
            self._write_layers()
            _notify.show_error(f"click refused: {refused[0]}")
            self.say(f"click refused: {refused[0]}")

    def _write_layers(self):
        """Session -> Points layers (undo, clear, open, refused clicks)."""
        self._syncing = True
        try:
            for name, points in ((POSITIVE, self.session.positives), (NEGATIVE, self.session.negatives)):
                layer = self._layer(name)
                if layer is not None:
                    layer.data = np.asarray(points, float).reshape(-1, 3)
                    layer.selected_data = set()
        finally:
            self._syncing = False

    def undo(self):
        """Remove the latest click (positive or negative)."""
        if self.session is not None and self.session.undo():
            self._write_layers()

    def clear(self):
        """Remove all clicks (the similarity map goes with them)."""
        if self.session is not None:
            self.session.clear()
            self._write_layers()

    # ------------------------------------------------------------------ the map
    def _recompute(self):
        """A map worker for the session's clicks now, or one more when the running one ends."""
        s = self.session
        if s is None:
            return
        if not s.grid_positives:
            self.say(NO_POSITIVE)
            if s.grid_negatives:
                _notify.show_info(NO_POSITIVE)
            return
        if self.maps.running:
            self._dirty = True
            return
        self._dirty = False
        region = self.visible_region() if s.features.grid.size > PREVIEW_POINTS else None
        self.maps.start(
            _map_job, s, s.snapshot(), region, on_done=s.accept, on_yield=self._show_preview, on_finished=self._on_map_finished
        )

    def _on_map_finished(self):
        if self._dirty:
            self._recompute()

    def _show_preview(self, item):
        """The section on screen, ahead of the whole map (dropped when the clicks changed meanwhile)."""
        preview, shown = item
        if not self.session.is_current(preview):
            return
        finite = preview.score[np.isfinite(preview.score)]
        hi = float(finite.max()) if finite.size else preview.default_threshold + 1e-3
        self._set_similarity(shown, (preview.default_threshold, max(hi, preview.default_threshold + 1e-3)))

    def _set_similarity(self, data, limits):
        layer = self._layer(SIMILARITY)
        if layer is None:
            self.viewer.add_image(
                data,
                name=SIMILARITY,
                colormap=dict(display.SIMILARITY_COLORMAP),
                blending="translucent",
                contrast_limits=limits,
                **self.layer_kwargs(kind="similarity"),
            )
            self._raise_points()
        else:
            layer.data = data
            layer.contrast_limits = limits

    def _show_map(self, result):
        """The session accepted a map (or dropped it: no positive click left)."""
        if self.maps.closed:  # a map that lands while the viewer closes
            return
        if result is None:
            for name in (SIMILARITY, THRESHOLDED):
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
            self.match_list.clear()
            self.say(NO_POSITIVE)
            return
        self._set_similarity(result.score, result.display_limits)
        self._show_threshold(self.session.threshold)
        self._show_mask()
        self.match_list.blockSignals(True)
        self.match_list.clear()
        for m in result.matches:
            where = m.survey or m.cube_index
            self.match_list.addItem(f"{m.rank}. il {where[0]:g}  xl {where[1]:g}  t {where[2]:g}   {m.score:.3f}")
        self.match_list.blockSignals(False)
        self._match_pos = -1
        snap = result.snapshot
        best = f"; best match {result.matches[0].score:.3f}" if result.matches else ""
        self.say(f"map from {len(snap.positives)} positive / {len(snap.negatives)} negative clicks{best}")

    def _raise_points(self):
        for name in (POSITIVE, NEGATIVE):
            layer = self._layer(name)
            if layer is not None:
                self.viewer.layers.move(self.viewer.layers.index(layer), len(self.viewer.layers))
        self.viewer.layers.selection.active = self._layer(POSITIVE)

    def _decision_changed(self, value):
        if self.session is not None:
            self.session.set_decision(value)
            self._recompute()

    def _connected_changed(self, value):
        if self.session is not None:
            self.session.set_connected(value)
            self._show_mask()

    # ------------------------------------------------------------------ threshold
    def threshold_value(self) -> float:
        return round(self.threshold.value() * THRESHOLD_STEP, 6)

    def _show_threshold(self, t: float):
        self.threshold.blockSignals(True)
        self.threshold.setValue(int(round(t / THRESHOLD_STEP)))
        self.threshold.blockSignals(False)
        self.threshold_label.setText(f"threshold {self.threshold_value():.2f}")

    def set_threshold(self, t: float):
        """The user's threshold (the slider, a script): the mask follows at once."""
        self._show_threshold(t)
        if self.session is not None:
            self.session.set_threshold(self.threshold_value())
        self._show_mask()

    def auto_threshold(self):
        """Back to the decision's default threshold."""
        if self.session is not None:
            self.session.set_threshold(None)
            self._show_threshold(self.session.threshold)
            self._show_mask()

    def _on_slider(self, value):
        self.threshold_label.setText(f"threshold {self.threshold_value():.2f}")
        if self.session is not None:
            self.session.set_threshold(self.threshold_value())
        self._threshold_timer.start()

    def _show_mask(self):
        mask = None if self.session is None else self.session.mask()
        if mask is None:
            return
        layer = self._layer(THRESHOLDED)
        if layer is None:
            self.viewer.add_labels(mask, name=THRESHOLDED, opacity=0.35, **self.layer_kwargs())
            self._raise_points()
        else:
            layer.data = mask

    # ------------------------------------------------------------------ matches
    @property
    def matches(self) -> list:
        r = self.result
        return [] if r is None else r.matches

    def jump_to_match(self, i: int):
        """Move the viewer's sliders to match ``i`` of the ranked list and mark it with a ring; the camera
        stays (centring on a match near an edge showed half a black view)."""
        if not 0 <= i < len(self.matches):
            return
        m = self.matches[i]
        self._match_pos = i
        where = m.survey if m.survey is not None else m.cube_index
        self.viewer.dims.set_point(list(range(3)), list(view.to_world(self.viewer, where, self.survey)))
        marker = self._layer(MATCH)
        if marker is None:
            marker = self.viewer.add_points(
                np.asarray([where], float),
                name=MATCH,
                symbol="ring",
                face_color="yellow",
                size=self._marker_size(2 * MARKER_CELLS),
                ndim=3,
                scale=self._points_scale(),
                projection_mode="rescale_linear",
                metadata={"survey": self.survey},
                canvas_size_limits=(2 * MARKER_PIXELS[0], 2 * MARKER_PIXELS[1]),
            )
            marker.editable = False
            self._raise_points()
        else:
            marker.data = np.asarray([where], float)
        if self.match_list.currentRow() != i:
            self.match_list.blockSignals(True)
            self.match_list.setCurrentRow(i)
            self.match_list.blockSignals(False)

    def next_match(self):
        if self.matches:
            self.jump_to_match((self._match_pos + 1) % len(self.matches))

    def visible_region(self):
        """The grid slice on screen in 2D (mapped and classified first), None in 3D."""
        if self.viewer.dims.ndisplay != 2:
            return None
        axis = self.viewer.dims.not_displayed[0]
        t = self.grid_transform()
        g = int(round((self.viewer.dims.point[axis] - t["translate"][axis]) / t["scale"][axis]))
        g = int(np.clip(g, 0, self.session.features.shape[axis] - 1))
        region = [slice(None)] * 3
        region[axis] = slice(g, g + 1)
        return tuple(region)


def _map_job(session, snapshot, region):
    """The map worker: the section on screen first (with the rest of the grid as last shown, a copy made
    here rather than on the GUI thread), then the whole map."""
    if region is not None:
        preview = session.preview(snapshot, region)
        last = session.result
        shown = last.score.copy() if last is not None else np.full(session.features.shape, np.nan, np.float32)
        shown[preview.region] = preview.score
        yield preview, shown
    return session.compute(snapshot)


def _row(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row
