"""Dock widget "Codec comparison": the section on screen through :func:`napari_seisfm.codecs.compare`.

Thin: it cuts the current slice (or the part of it visible on the canvas) out of the selected
Image layer, runs ``compare`` in a thread (the dock base's job: progress bar, Cancel, teardown on
close), and shows the result in a wide dock of its own below the canvas ("Codec comparison: results"):
a sortable, scrollable table beside the spectra / trade-off figure, drawn for the room it has. Two
layers (reconstruction and residual of the selected row) are placed exactly on the slice they came
from. An MAE with a decoder (a model trained by ``seisfm pretrain``) adds its rows, and its
latent-masking study is drawn beside them.
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
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ...errors import SeisfmError
from ._dock import Dock, dock_of, form

REGIONS = ("section on screen", "visible part of the section")
RESULTS_HEIGHT = 340  # px: the results dock below the canvas, tall enough for the table's first rows and the plots
TABLE_WIDTH = 720  # px of the results dock for the table at first (a splitter: the user moves it)


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


class CodecResults(QWidget):
    """The comparison's table, figure and masking plot side by side: a dock of its own below the canvas,
    where the table has the width for its columns and the figure the room to be read."""

    def __init__(self, columns):
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.table = QTableWidget(0, len(columns))
        self.table.setHorizontalHeaderLabels([h for h, _, _ in columns])
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setMinimumSize(200, 120)
        # the comparison figure is drawn in the worker thread (a 3-panel draw is ~250 ms) and shown as a picture
        self.canvas = QLabel()
        self.canvas.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.canvas.setMinimumSize(200, 120)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.mask_figure = Figure(figsize=(4, 2.4), layout="constrained")
        self.mask_canvas = FigureCanvasQTAgg(self.mask_figure)
        self.mask_canvas.setMinimumSize(200, 120)
        self.mask_canvas.hide()  # until a masking study is drawn
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for w in (self.table, self.canvas, self.mask_canvas):
            self.splitter.addWidget(w)
        self.splitter.setSizes([TABLE_WIDTH, 1200, 0])
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.splitter)

    def figure_size(self) -> tuple[int, int, float]:
        """(width, height, device pixel ratio) the comparison figure is drawn at: the room it will have (before
        the dock is laid out: a share of the window's width and the dock's height)."""
        w, h = self.canvas.width(), self.canvas.height()
        if not self.canvas.isVisible() or w < 300 or h < 200:  # not laid out yet (an unshown label says 640x480)
            top = self.window()
            w, h = (top.width() - TABLE_WIDTH - 40) if top is not self else 900, RESULTS_HEIGHT - 40
        return max(w, 480), max(h, 240), self.canvas.devicePixelRatioF()

    def show_picture(self, pixmap):
        """The figure, shrunk to the room it has if the dock is smaller than it was drawn for."""
        room = self.canvas.size()
        if room.width() > 50 and room.height() > 50 and (pixmap.width() > room.width() or pixmap.height() > room.height()):
            dpr = pixmap.devicePixelRatio()
            pixmap = pixmap.scaled(room * dpr, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            pixmap.setDevicePixelRatio(dpr)
        self.canvas.setPixmap(pixmap)


class CodecWidget(Dock):
    what = "codec comparison"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer, run_text="Compare")
        self.result = None  # (Comparison, placement) of the last finished run

        from napari.layers import Image

        self.layer = self.layer_picker(
            "image layer",
            lambda ly: isinstance(ly, Image) and not ly.metadata.get("codec_result"),
            tooltip="the section on screen of this layer is compared",
        )
        self.mae_model = QComboBox()
        self.mae_model.setEditable(True)
        self.mae_model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.mae_model.setMinimumContentsLength(12)
        self.mae_model.setToolTip(
            "an MAE whose weights hold a decoder (seisfm pretrain): its id, or the run folder; empty: no MAE rows"
        )
        self.mae_model.addItems(["", *self._decoder_models()])
        self.mae_model.lineEdit().setPlaceholderText("MAE with a decoder (optional)")
        # the settings of compare and of the masking study: a magicgui form
        self.region = ComboBox(choices=REGIONS, label="region")
        self.codecs = LineEdit(
            value="default",
            label="codecs",
            tooltip=(
                "comma-separated: default, cosmos, quant4..16, lz4, snappy, deflate, zstd, gdeflate, ans, "
                "zfp-rate<R>, zfp-tol<T>, zfp-prec<P>, cosmos-CI8x8, ..."
            ),
        )
        self.cosmos_dir = LineEdit(
            label="Cosmos folder", tooltip="TorchScript files are code: they are loaded only from the folder you give here"
        )
        self.cosmos_dir.native.setPlaceholderText("folder with Cosmos-Tokenizer-<variant>/ (optional)")
        self.masking = LineEdit(
            value="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", tooltip="fractions of latent tokens masked, in [0, 1)"
        )
        mask_button = PushButton(text="Masking study")
        self.mask_button = mask_button.native  # a Qt button, like Compare: the job controller enables it
        self.sample_interval = FloatSpinBox(min=0, max=1000, label="sample interval")
        self.sample_interval.native.setDecimals(3)
        _units(self.sample_interval, " ms", "unknown")
        self.lowpass = FloatSpinBox(min=0, max=10000, label="low-pass")
        _units(self.lowpass, " Hz", "off")
        self.trim = CheckBox(value=True, text="trim to multiples of 32 (as the paper)")
        masking = Container(widgets=[self.masking, mask_button], layout="horizontal", labels=False, label="masked fractions")
        masking.margins = (0, 0, 0, 0)
        self.form = form(
            self.layer, self.region, self.codecs, self.cosmos_dir, masking, self.sample_interval, self.lowpass, self.trim
        )
        from ...codecs.table import COLUMNS

        self.columns = COLUMNS
        self.results = CodecResults(COLUMNS)
        self.table, self.canvas = self.results.table, self.results.canvas
        self.mask_figure, self.mask_canvas = self.results.mask_figure, self.results.mask_canvas
        self.figure = None  # the comparison figure last drawn
        self.masking_result = None
        self._results_dock = None
        self._sorted_by_user = False
        self.table.horizontalHeader().sectionClicked.connect(lambda _: setattr(self, "_sorted_by_user", True))
        self.table.itemSelectionChanged.connect(self._on_row_selected)

        pickers = QFormLayout()
        pickers.addRow("MAE model", self.mae_model)
        self.body.addWidget(self.form.native)
        self.body.addLayout(pickers)
        self.add_job_row()
        self.body.addStretch()
        self.jobs.run_buttons = (self.run_button, self.mask_button)
        self.jobs.on_progress = self._on_progress
        self.run_button.clicked.connect(self.run)
        self.mask_button.clicked.connect(self.run_masking)
        self.layer.changed.connect(self._guess_sample_interval)
        self.reset_choices()
        self._guess_sample_interval()
        self.say("Compare the section on screen: the table and plots open below the canvas.")

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _decoder_models() -> list[str]:
        from ...codecs.mae import decoder_models

        try:
            return decoder_models()
        except SeisfmError:
            return []

    def _selected_layer(self):
        layer = self.layer.value
        if layer is None:
            raise SeisfmError("no image layer selected: open a seismic cube or section first")
        return layer

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
            point = layer.world_to_data(self.viewer.dims.point[-layer.ndim :])
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
        return section[lo[0] : hi[0], lo[1] : hi[1]], (int(lo[0]), int(lo[1]))

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
            self.error(exc)
            return
        dt = self.sample_interval.value or None
        if placement["axis"] == 2:  # a time slice has no time axis
            dt = None
        kwargs = {
            "lowpass_hz": self.lowpass.value or None,
            "trim_multiple": 32 if self.trim.value else 1,
            "cosmos_dir": self.cosmos_dir.value.strip() or None,
            "progress": self.jobs.report,
            "cancel": self.jobs.cancel_event,
            "mae_model": self.mae_model.currentText().strip() or None,
        }
        self.show_results()  # laid out before the figure is drawn for its room
        self.say(f"comparing {len(names)} codecs on a {section.shape[0]}x{section.shape[1]} section ...")
        self.jobs.start(
            _compare_and_draw,
            compare_with_mae,
            self.results.figure_size(),
            section,
            names,
            dt,
            on_done=lambda done: self._on_done(done, placement),
            **kwargs,
        )

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
            self.error(exc)
            return
        dt = None if placement["axis"] == 2 else (self.sample_interval.value or None)
        self.jobs.start(
            masking_study,
            section,
            model,
            fractions,
            sample_interval_ms=dt,
            lowpass_hz=self.lowpass.value or None,
            trim_multiple=32 if self.trim.value else 1,
            progress=self.jobs.report,
            cancel=self.jobs.cancel_event,
            on_done=self._on_masking_done,
        )

    def _on_masking_done(self, study):
        from ...codecs.mae_masking import masking_figure

        self.masking_result = study
        self.show_results()
        self.mask_canvas.show()
        sizes = self.results.splitter.sizes()
        if sizes[2] == 0:  # room for the masking plot, taken from the comparison figure
            self.results.splitter.setSizes([sizes[0], max(sizes[1] - 400, 200), 400])
        masking_figure(study, fig=self.mask_figure)
        self.mask_canvas.draw_idle()
        self.say(f"masking study of {study.model_id}: {len(study.rows)} runs, {study.seconds:.2f} s (plot below the canvas)")

    def cancel(self):
        """Stop after the codec in progress."""
        self.jobs.cancel()

    def _on_progress(self, done, total, name=""):
        """GUI thread, at most every REFRESH_MS: the latest report only (the bar with the time left, the codec)."""
        self.jobs._show_progress(done, total)
        if name and name != "done":
            self.say(f"{name} ({done}/{total})")

    def show_results(self):
        """The results dock below the canvas (made once; shown again if the user closed it)."""
        if self._results_dock is not None:
            try:
                self._results_dock.show()
                return
            except RuntimeError:  # the user closed it and Qt deleted it
                self._results_dock = None
        try:
            self.viewer.window.add_dock_widget(self.results, name="Codec comparison: results", area="bottom")
            # the Qt dock itself (a dock opened from the Plugins menu sees napari's proxies of the viewer's objects)
            self._results_dock = dock_of(self.results)
            self.results.window().resizeDocks([self._results_dock], [RESULTS_HEIGHT], Qt.Orientation.Vertical)
        except (AttributeError, RuntimeError):  # no window (a script): the results widget stands alone
            self._results_dock = None

    def _on_done(self, done, placement):
        from qtpy.QtGui import QImage, QPixmap

        comp, self.figure, rgba, dpr = done
        self.result = (comp, placement)
        self._fill_table(comp)
        h, w = rgba.shape[:2]
        image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        pixmap = QPixmap.fromImage(image)  # a copy: the array may go
        pixmap.setDevicePixelRatio(dpr)
        self.results.show_picture(pixmap)
        info = comp.info()
        self.say(
            f"{len(comp.rows)} codecs on {info['compared_shape'][0]}x{info['compared_shape'][1]} samples in "
            f"{info['total_s']:.2f} s: the table and plots are below the canvas; select a row to see its "
            "reconstruction and residual"
        )
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
                self.viewer.add_image(
                    data,
                    name=layer_name,
                    metadata={**meta, "survey": source.metadata.get("survey")},
                    colormap=source.colormap,
                    contrast_limits=source.contrast_limits,
                    visible=suffix == "reconstruction",
                    **kwargs,
                )  # the residual: one click away
        self.say(f"showing {name}: layers {source.name!r} codec reconstruction / residual")

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
