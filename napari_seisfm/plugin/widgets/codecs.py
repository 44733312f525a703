"""Dock widget "Codec comparison": the section on screen through :func:`napari_seisfm.codecs.compare`.

Thin: it cuts the current slice (or the part of it visible on the canvas) out of the selected
Image layer, runs ``compare`` in a thread (the docks' :class:`._jobs.JobController`: progress
bar, Cancel, teardown on close), and shows the result as a
sortable table, the spectra / trade-off figure, and two layers (reconstruction and residual of the
selected row) placed exactly on the slice they came from. An MAE with a decoder (a model trained by
``seisfm pretrain``) adds its rows, and its latent-masking study is drawn in a small plot.
"""

from __future__ import annotations

import math

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, PushButton
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...errors import SeisfmError
from . import _notify
from ._jobs import JobController

REGIONS = ("section on screen", "visible part of the section")


class _SortItem(QTableWidgetItem):
    """Table cell that sorts by a number (nan last) while showing formatted text."""

    def __init__(self, text: str, key):
        super().__init__(text)
        self.key = key
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)

    def __lt__(self, other):
        a, b = self.key, getattr(other, "key", None)
        if isinstance(a, float) and isinstance(b, float):
            return (math.isnan(a), a) < (math.isnan(b), b)
        return str(a) < str(b)


class CodecWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.result = None  # (Comparison, placement) of the last finished run

        # the layer and model pickers: Qt combos (the model one also takes a typed id or folder)
        self.layer = QComboBox()
        self.mae_model = QComboBox()
        self.mae_model.setEditable(True)
        self.mae_model.setToolTip("an MAE whose weights hold a decoder (seisfm pretrain): its id, or the run folder; "
                                  "empty: no MAE rows")
        self.mae_model.addItems(["", *self._decoder_models()])
        self.mae_model.lineEdit().setPlaceholderText("MAE with a decoder: model id or folder (optional)")
        # the settings of compare and of the masking study: a magicgui form
        self.region = ComboBox(choices=REGIONS, label="region")
        self.codecs = LineEdit(value="default", label="codecs", tooltip=(
            "comma-separated: default, cosmos, quant4..16, lz4, snappy, deflate, zstd, gdeflate, ans, "
            "zfp-rate<R>, zfp-tol<T>, zfp-prec<P>, cosmos-CI8x8, ..."))
        self.cosmos_dir = LineEdit(label="Cosmos folder",
                                   tooltip="TorchScript files are code: they are loaded only from the folder you give here")
        self.cosmos_dir.native.setPlaceholderText("folder with Cosmos-Tokenizer-<variant>/encoder.jit (optional)")
        self.masking = LineEdit(value="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
                                tooltip="fractions of latent tokens masked, in [0, 1)")
        mask_button = PushButton(text="Masking study")
        self.mask_button = mask_button.native  # a Qt button, like Compare: the job controller enables it
        self.sample_interval = FloatSpinBox(min=0, max=1000, label="sample interval")
        self.sample_interval.native.setDecimals(3)
        _units(self.sample_interval, " ms", "unknown")
        self.lowpass = FloatSpinBox(min=0, max=10000, label="low-pass")
        _units(self.lowpass, " Hz", "off")
        self.trim = CheckBox(value=True, text="trim to multiples of 32 (as the paper)")
        masking = Container(widgets=[self.masking, mask_button], layout="horizontal", labels=False,
                            label="masked fractions")
        masking.margins = (0, 0, 0, 0)
        self.form = _form(self.region, self.codecs, self.cosmos_dir, masking, self.sample_interval, self.lowpass,
                          self.trim)
        self.progress = QProgressBar()
        self.status = QLabel("")
        # a new status text must never re-lay out the window (the canvas beside it resizes: ~100 ms)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.setMinimumWidth(0)
        self.run_button = QPushButton("Compare")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        from ...codecs.table import COLUMNS

        self.columns = COLUMNS
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([h for h, _, _ in COLUMNS])
        self.table.setSortingEnabled(True)
        self._sorted_by_user = False
        self.table.horizontalHeader().sectionClicked.connect(lambda _: setattr(self, "_sorted_by_user", True))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.itemSelectionChanged.connect(self._on_row_selected)

        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        # the comparison figure is drawn in the worker thread (a 3-panel draw is ~250 ms) and shown
        # as a picture; ``figure`` is the last one drawn
        self.figure = Figure(figsize=(9, 3), layout="constrained")
        self.canvas = QLabel()
        self.canvas.setMinimumHeight(260)
        self.canvas.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.mask_figure = Figure(figsize=(6, 2.4), layout="constrained")
        self.mask_canvas = FigureCanvasQTAgg(self.mask_figure)
        self.mask_canvas.setMinimumHeight(180)
        self.masking_result = None

        pickers = QFormLayout()
        pickers.addRow("image layer", self.layer)
        pickers.addRow("MAE model", self.mae_model)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(pickers)
        layout.addWidget(self.form.native)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.table, stretch=1)
        layout.addWidget(self.canvas, stretch=1)
        layout.addWidget(self.mask_canvas)

        self.jobs = JobController(self, run_buttons=[self.run_button, self.mask_button],
                                  cancel_button=self.cancel_button, progress_bar=self.progress,
                                  on_progress=self._on_progress, what="codec comparison", viewer=napari_viewer)
        self.run_button.clicked.connect(self.run)
        self.mask_button.clicked.connect(self.run_masking)
        self.layer.currentTextChanged.connect(self._guess_sample_interval)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _decoder_models() -> list[str]:
        from ...codecs.mae import decoder_models

        try:
            return decoder_models()
        except SeisfmError:
            return []

    def _image_layers(self):
        from napari.layers import Image

        return [ly for ly in self.viewer.layers if isinstance(ly, Image) and not ly.metadata.get("codec_result")]

    def _refresh_layers(self, event=None):
        current = self.layer.currentText()
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems([ly.name for ly in self._image_layers()])
        if current:
            self.layer.setCurrentText(current)
        self.layer.blockSignals(False)
        self._guess_sample_interval()

    def _selected_layer(self):
        for ly in self._image_layers():
            if ly.name == self.layer.currentText():
                return ly
        raise SeisfmError("no image layer selected: open a seismic cube or section first")

    def _guess_sample_interval(self, *_):
        """Seismic layers carry their geometry: take the time step from it."""
        try:
            layer = self._selected_layer()
        except SeisfmError:
            return
        geom = layer.metadata.get("geometry") or {}
        if geom.get("sample_unit") == "ms" and geom.get("samples"):
            self.sample_interval.value = min(float(geom["samples"][2]), self.sample_interval.max)

    def current_section(self):
        """(section, placement) of the selected layer at the current dims position.

        ``placement`` holds the sliced data axis (None for 2D layers), its index, the (row, col)
        offset of the cut-out and the layer, so results can be put back exactly where they came from.
        """
        layer = self._selected_layer()
        if self.viewer.dims.ndisplay != 2:
            raise SeisfmError("codec comparison works on a 2D section: switch the viewer to 2D")
        data = layer.data
        if layer.ndim == 2:
            axis, index = None, None
            section = np.asarray(data)
        elif layer.ndim == 3:
            displayed = [d - (self.viewer.dims.ndim - layer.ndim) for d in self.viewer.dims.displayed]
            axis = ({0, 1, 2} - set(displayed)).pop()
            point = layer.world_to_data(self.viewer.dims.point[-layer.ndim:])
            index = int(np.clip(round(float(point[axis])), 0, data.shape[axis] - 1))
            key = [slice(None)] * 3
            key[axis] = index
            section = np.asarray(data[tuple(key)])
        else:
            raise SeisfmError(f"layer {layer.name!r}: needs 2D or 3D data, got {layer.ndim}D")
        offset = (0, 0)
        if self.region.value == REGIONS[1]:
            section, offset = self._visible_part(layer, axis, section)
        return np.asarray(section, dtype=np.float32), {"axis": axis, "index": index, "offset": offset, "layer": layer}

    def _visible_part(self, layer, axis, section):
        """Crop to what the canvas shows: napari keeps the visible data box in ``layer.corner_pixels``."""
        keep = [a for a in range(layer.ndim) if a != axis]
        corners = np.asarray(layer.corner_pixels)[:, keep]
        shape = np.array(section.shape)
        lo = np.clip(np.floor(corners[0]), 0, shape - 1).astype(int)
        hi = np.clip(np.ceil(corners[1]) + 1, lo + 1, shape).astype(int)
        return section[lo[0]:hi[0], lo[1]:hi[1]], (int(lo[0]), int(lo[1]))

    def codec_names(self) -> list[str]:
        from ...codecs import expand_codecs

        return expand_codecs(self.codecs.value, self.cosmos_dir.value.strip() or None)

    # ------------------------------------------------------------------ run
    def run(self):
        """Start a comparison with the form's settings (returns at once; the work is in a thread)."""
        from ...codecs.mae import compare_with_mae

        if self.jobs.running:
            return
        try:
            section, placement = self.current_section()
            names = self.codec_names()
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return
        dt = self.sample_interval.value or None
        if placement["axis"] == 2:  # a time slice has no time axis
            dt = None
        kwargs = dict(
            lowpass_hz=self.lowpass.value or None,
            trim_multiple=32 if self.trim.value else 1,
            cosmos_dir=self.cosmos_dir.value.strip() or None,
            progress=self.jobs.report,
            cancel=self.jobs.cancel_event,
            mae_model=self.mae_model.currentText().strip() or None,
        )
        size = (max(self.canvas.width(), 600), max(self.canvas.height(), 260), self.canvas.devicePixelRatioF())
        self.jobs.start(_compare_and_draw, compare_with_mae, size, section, names, dt,
                        on_done=lambda done: self._on_done(done, placement), on_finished=self._on_finished, **kwargs)

    def run_masking(self):
        """Start the latent-masking study of the MAE model on the section on screen (in a thread)."""
        from ...codecs.mae import parse_fractions
        from ...codecs.mae_masking import masking_study

        if self.jobs.running:
            return
        try:
            model = self.mae_model.currentText().strip()
            if not model:
                raise SeisfmError("masking study: choose an MAE model with a decoder (trained by seisfm pretrain)")
            fractions = parse_fractions(self.masking.value, "masked fractions")
            section, placement = self.current_section()
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return
        dt = None if placement["axis"] == 2 else (self.sample_interval.value or None)
        self.jobs.start(masking_study, section, model, fractions, sample_interval_ms=dt,
                        lowpass_hz=self.lowpass.value or None, trim_multiple=32 if self.trim.value else 1,
                        progress=self.jobs.report, cancel=self.jobs.cancel_event, on_done=self._on_masking_done,
                        on_finished=self._on_finished)

    def _on_masking_done(self, study):
        from ...codecs.mae_masking import masking_figure

        self.masking_result = study
        masking_figure(study, fig=self.mask_figure)
        self.mask_canvas.draw_idle()
        self.status.setText(f"masking study of {study.model_id}: {len(study.rows)} runs, {study.seconds:.2f} s")

    def cancel(self):
        """Stop after the codec in progress."""
        self.jobs.cancel()

    def _on_progress(self, done, total, name):
        """GUI thread, at most every REFRESH_MS: the latest report only."""
        if self.progress.maximum() != max(total, 1):
            self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status.setText(f"{name} ({done}/{total})" if name != "done" else "")

    def _on_done(self, done, placement):
        from qtpy.QtGui import QImage, QPixmap

        comp, self.figure, rgba, dpr = done
        self.result = (comp, placement)
        self._fill_table(comp)
        h, w = rgba.shape[:2]
        image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        pixmap = QPixmap.fromImage(image)  # a copy: the array may go
        pixmap.setDevicePixelRatio(dpr)
        self.canvas.setPixmap(pixmap)
        info = comp.info()
        self.status.setText(f"{info['compared_shape'][0]}x{info['compared_shape'][1]} samples, {info['total_s']:.2f} s")
        first = next((i for i, r in enumerate(comp.rows) if r.ok and r.kind != "lossless"), None)
        if first is None:
            first = next((i for i, r in enumerate(comp.rows) if r.ok), None)
        if first is not None:
            self.show_codec(comp.rows[first].method)

    def _fill_table(self, comp):
        from ...codecs.table import cell

        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(comp.rows))
        for i, row in enumerate(comp.rows):
            for j, (_, attr, fmt) in enumerate(self.columns):
                key = row.encode_s + row.decode_s if attr == "time_ms" else getattr(row, attr)
                item = _SortItem(cell(row, attr, fmt), float(key) if isinstance(key, (int, float)) else key)
                if not row.ok:
                    item.setToolTip(row.status)
                self.table.setItem(i, j, item)
        if not self._sorted_by_user:
            # no sort indicator: the rows stay in the comparison's order (Qt's default reversed the names)
            self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def _on_row_selected(self):
        items = self.table.selectedItems()
        if items and self.result is not None:
            self.show_codec(self.table.item(items[0].row(), 0).text())

    def show_codec(self, name: str):
        """Put the reconstruction and residual of ``name`` in the viewer (two layers, reused)."""
        comp, placement = self.result
        if name not in comp.reconstructions:
            return
        p = comp.prepared
        recon = p.to_input_units(comp.reconstructions[name])
        resid = ((comp.input - comp.reconstructions[name]) * p.std).astype(np.float32)
        source = placement["layer"]
        kwargs = self._placement_kwargs(source, placement)
        for suffix, data in (("reconstruction", recon), ("residual", resid)):
            if placement["axis"] is not None:
                data = np.expand_dims(data, placement["axis"])
            layer_name = f"{source.name} codec {suffix}"
            meta = {"codec_result": True, "codec": name}
            if layer_name in self.viewer.layers:
                layer = self.viewer.layers[layer_name]
                layer.data = data
                layer.scale, layer.translate = kwargs["scale"], kwargs["translate"]
                layer.metadata.update(meta)
            else:
                self.viewer.add_image(data, name=layer_name, metadata=meta, colormap=source.colormap,
                                      contrast_limits=source.contrast_limits, **kwargs)
        self.status.setText(f"showing {name}")

    @staticmethod
    def _placement_kwargs(source, placement) -> dict:
        """Same scale as the source; translate moved to the slice and to the cut-out's corner."""
        scale = np.asarray(source.scale, float)
        translate = np.asarray(source.translate, float).copy()
        axis = placement["axis"]
        keep = [a for a in range(source.ndim) if a != axis]
        if axis is not None:
            translate[axis] += placement["index"] * scale[axis]
        for a, off in zip(keep, placement["offset"]):
            translate[a] += off * scale[a]
        return {"scale": tuple(scale), "translate": tuple(translate)}

    def _on_finished(self):
        self.progress.setRange(0, 1)


def _form(*widgets) -> Container:
    """A labelled form flush with the rows above it; widgets added one by one so magicgui lines up
    their labels (it does not for ``Container(widgets=...)``)."""
    form = Container()
    form.margins = (0, 0, 0, 0)
    form.extend(widgets)
    return form


def _units(spin: FloatSpinBox, suffix: str, at_zero: str) -> None:
    """Show the unit after the number, and what 0 means instead of 0."""
    spin.native.setSuffix(suffix)
    spin.native.setSpecialValueText(at_zero)


def _compare_and_draw(compare, size, section, names, dt, **kwargs):
    """Worker body: the comparison, then its figure drawn here (matplotlib's Agg renderer, fonts
    cached per thread) so the GUI thread only shows a picture."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ...codecs.plots import comparison_figure

    comp = compare(section, names, dt, **kwargs)
    width, height, dpr = size
    fig = Figure(figsize=(width / 100, height / 100), dpi=100 * dpr, layout="constrained")
    FigureCanvasAgg(fig)
    comparison_figure(comp, fig=fig)
    fig.canvas.draw()
    return comp, fig, np.asarray(fig.canvas.buffer_rgba()).copy(), dpr
