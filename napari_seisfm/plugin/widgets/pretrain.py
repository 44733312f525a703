"""Dock widget "Pretrain on this survey": a form over :func:`napari_seisfm.pretrain.run.pretrain`.

Thin: it turns the selected Image layer into a training source (its cube file when it has one,
else its array), runs ``pretrain`` in a thread through the docks' :class:`._jobs.JobController`
(Run / Cancel / Resume, teardown on close), and shows progress, loss and a live loss curve. The
worker only appends each step to a list; the controller's GUI timer reads that list a few times
per second, so a fast run never floods the GUI thread.

A run lives in its output folder (default: ``<user model dir>/<layer>-<timestamp>``). Cancel
leaves a checkpoint there; with that folder chosen the Run button says "Resume" and continues it.
A finished model is listed in the user model directory, so the extraction dock can use it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, FloatSpinBox, LineEdit, PushButton, SpinBox
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QLabel

from ...errors import SeisfmCancelled, SeisfmError
from ...pretrain import CHECKPOINT, MINUTES_PROBE
from . import _notify
from ._dock import Dock, form, row
from ._jobs import JobController

SIZES = ("test", "tiny", "small")
TOKENIZATIONS = ("2.5d", "2d", "3d")
CUBE_SUFFIXES = (".sgy", ".segy", ".sgz", ".npy")
REFRESH_MS = 250  # the plot and the labels follow the run at most 4 times a second
NO_HELDOUT = "none"


class PretrainWidget(Dock):
    what = "pretraining"
    needs_torch = True

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.result = None  # the PretrainResult of the last finished run
        self.message = ""  # the last outcome shown (model ready, stopped at step k, error)
        self._latest = None
        self._run_out: Path | None = None
        self._run_name = ""
        self._minutes_mode = False
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []

        self.layer = self.layer_picker("seismic layer", _is_training_layer, tooltip="a 3-D seismic layer to train on")
        self.heldout = self.layer_picker(
            "held-out cube",
            lambda ly: _is_training_layer(ly) and _has_file(ly),
            none=NO_HELDOUT,
            tooltip="a cube file (layer opened from SEG-Y, .sgz or .npy) for a held-out loss",
        )
        # the parameters: one widget per argument of pretrain
        self.size = ComboBox(
            choices=SIZES, label="model size", tooltip="ViT size: test trains in minutes on a CPU; tiny and small want a GPU"
        )
        self.tokenization = ComboBox(choices=TOKENIZATIONS, label="tokenization")
        self.budget = FloatSpinBox()
        self.budget_unit = ComboBox(choices=["minutes", "steps"])
        self._set_budget_unit("minutes")
        self.batch_size = SpinBox(value=32, min=1, max=4096, label="batch size")
        self.name = LineEdit(label="model name", tooltip="model id: the name the extraction dock and seisfm embed --model use")
        self.out = LineEdit()
        browse = PushButton(text="...", tooltip="choose a folder")
        browse.max_width = 30
        # the devices torch sees are known once torch is imported, off the GUI thread (seconds on a cold machine)
        self.device = ComboBox(choices=["auto", "cpu"], label="device", tooltip="checking for GPUs ...")
        self.form = form(
            self.layer,
            self.heldout,
            self.size,
            self.tokenization,
            row("budget", self.budget, self.budget_unit),
            self.batch_size,
            self.name,
            row("output folder", self.out, browse),
            self.device,
        )
        self.progress.setTextVisible(False)

        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 2.4), layout="constrained")
        self.axes = self.figure.add_subplot()
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(190)
        self._init_plot()
        self.thumbnail = QLabel()
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.body.addWidget(self.form.native)
        self.add_job_row()
        self.body.addWidget(self.canvas)
        self.body.addWidget(self.thumbnail)
        self.body.addStretch()

        # closing the viewer (or this dock) stops a run at its next step, leaving a checkpoint
        self.jobs.on_progress = lambda *_: self._drain()
        self.jobs.keep_all = True
        self.jobs._timer.setInterval(REFRESH_MS)
        self.run_button.clicked.connect(self.run)
        browse.changed.connect(self._browse_out)
        self.budget_unit.changed.connect(self._set_budget_unit)
        self.layer.changed.connect(self._new_default_name)
        self.name.changed.connect(self._refresh_run_button)
        self.out.changed.connect(self._refresh_run_button)
        self.reset_choices()
        self._new_default_name()
        self.say("Choose the seismic layer and a budget, then Run: the model joins Extract embeddings' list when done.")
        self._devices = JobController(self, what="device check", viewer=napari_viewer)
        self._devices.start(_devices, on_done=self._show_devices, on_error=lambda exc: None)

    # ------------------------------------------------------------------ inputs
    def _show_devices(self, devices):
        current = self.device.value
        self.device.choices = devices
        self.device.value = current if current in devices else "auto"
        self.device.tooltip = "auto: a GPU when there is one"

    def reset_choices(self, *_):
        super().reset_choices()
        if hasattr(self, "name"):
            self._new_default_name()

    def _set_budget_unit(self, unit: str):
        self._minutes_mode = unit == "minutes"
        decimals, lo, hi, step, value = (1, 0.1, 100_000, 1, 10) if self._minutes_mode else (0, 1, 10_000_000, 100, 1000)
        self.budget.native.setDecimals(decimals)  # whole steps; minutes to a tenth
        self.budget.range = (lo, hi)
        self.budget.step = step
        self.budget.value = value

    def _new_default_name(self, *_):
        """A fresh model id: the layer's name and the time (shown as the name field's hint)."""
        base = _plain_name(self.layer.value.name if self.layer.value is not None else "") or "survey"
        self.name.native.setPlaceholderText(f"{base}-{time.strftime('%Y%m%d-%H%M%S')}")
        self._refresh_run_button()

    def _browse_out(self, *_):
        path = QFileDialog.getExistingDirectory(self, "Run folder (new, or an unfinished run to resume)", str(_model_dir()))
        if path:
            self.out.value = path

    def run_folder(self) -> tuple[Path, str]:
        """(output folder, model id) the Run button would use."""
        name = self.name.value.strip()
        out = self.out.value.strip()
        if out:
            out_dir = Path(out).expanduser()
            return out_dir, name or out_dir.name
        name = name or self.name.native.placeholderText()
        return _model_dir() / name, name

    def _folder_state(self) -> str:
        """ "new", "unfinished" (a checkpoint, no model) or "finished" (a model card)."""
        out, _ = self.run_folder()
        if out.is_dir() and any(out.glob("*.toml")):
            return "finished"
        if (out / CHECKPOINT).is_file():
            return "unfinished"
        return "new"

    def _refresh_run_button(self, *_):
        if self.jobs.running:
            return
        state = self._folder_state()
        self.run_button.setText("Resume" if state == "unfinished" else "Run")
        out, _ = self.run_folder()
        self.out.native.setPlaceholderText(str(out))
        if state == "unfinished":
            self.run_button.setToolTip(f"{out} holds an unfinished run: Resume continues it with its own settings")
        elif state == "finished":
            self.run_button.setToolTip(f"{out} holds a finished model: choose another name or folder")
        else:
            self.run_button.setToolTip(f"train a new model in {out}")

    # ------------------------------------------------------------------ run
    def run(self):
        """Start (or resume) a run with the form's settings (returns at once; the work is in a thread)."""
        if self.jobs.running:
            return
        try:
            out, name = self.run_folder()
            resume = self._folder_state() == "unfinished"
            layer = self.layer.value
            if layer is None and not resume:
                raise SeisfmError("no seismic layer selected: open a 3-D seismic cube first")
            given = _layer_input(layer) if layer is not None else None
            heldout = self.heldout.value
            val = _layer_path(heldout) if heldout is not None else None
        except SeisfmError as exc:
            self._show_error(exc)
            return
        budget = self.budget.value
        kwargs = {
            "out": out,
            "name": name,
            "tokenization": self.tokenization.value,
            "size": self.size.value,
            "minutes": budget if self._minutes_mode else None,
            "steps": None if self._minutes_mode else int(budget),
            "batch_size": self.batch_size.value,
            "device": self.device.value,
            "val": val,
            "resume": resume,
            "progress": self.jobs.report,
            "cancel": self.jobs.cancel_event,
            "command": "napari dock: Pretrain on this survey",
        }
        self._run_out, self._run_name = out, name
        self._latest = None
        self.result = None
        self.thumbnail.clear()
        self._clear_plot()
        self.progress.setRange(0, 0)  # busy until the first step
        self.progress.setTextVisible(True)
        self.say(("resuming" if resume else "starting") + f" {name} in {out} ...")
        self.jobs.start(_train, given, kwargs, on_done=self._on_done, on_error=self._on_error, on_finished=self._on_finished)
        self.progress.setFormat("step %v of %m")

    def cancel(self):
        """Stop before the next step; the folder keeps a checkpoint that Resume continues."""
        self.jobs.cancel()

    def _drain(self):
        """GUI thread, a few times a second: progress bar, label and plot from the steps since the last call."""
        new = [r[0] for r in self.jobs.take_all()]
        if not new:
            return
        for p in new:
            self.steps.append(p.step)
            self.losses.append(p.loss)
            if p.val_loss is not None:
                self.val_steps.append(p.step)
                self.val_losses.append(p.val_loss)
        p = self._latest = new[-1]
        if self._minutes_mode and p.step < _minutes_probe() and p.total == p.step + 1:
            self.progress.setRange(0, 0)  # the step count follows from the first steps' time
            of = "(timing the first steps)"
        else:
            self.progress.setRange(0, max(p.total, 1))
            self.progress.setValue(p.step)
            eta = _eta_text(self.jobs._rate.eta(p.step / max(p.total, 1)))
            self.progress.setFormat(f"step %v of %m{'  ·  ' + eta if eta else ''}")
            of = f"of {p.total}"
        text = f"step {p.step} {of} · loss {p.loss:.3f} · {p.samples_per_s:.0f} windows/s"
        if self.val_losses:
            text += f" · held-out {self.val_losses[-1]:.3f}"
        self.say(text)
        self._update_plot()

    def _on_done(self, result):
        self._drain()
        self.result = result
        self.progress.setRange(0, max(result.steps, 1))
        self.progress.setValue(result.steps)
        picture = result.out / "reconstructions.png"
        shown = _show_extract_docks(self.viewer, result.model_id) if result.installed else 0
        if result.installed:
            where = "it is now in the Extract embeddings dock's model list" if shown else "the Extract embeddings dock lists it"
            text = f"model {result.model_id!r} is ready: {where} (and seisfm embed --model {result.model_id})"
        else:
            text = (
                f"model {result.model_id!r} is ready in {result.out}, but its id is taken by another model: "
                f"use it with seisfm embed --model {result.out}"
            )
        self.message = text
        n = result.loss_window
        self.say(
            f"{text}. Loss {result.first_loss:.3f} (mean of the first {n} steps) -> {result.last_loss:.3f} "
            f"(the last {n}) over {result.steps} steps. Folder {result.out}: the model, losses.png and "
            "reconstructions.png (below)"
        )
        if picture.is_file():
            self._show_thumbnail(picture)
        _notify.show_info(text)

    def _on_error(self, exc):
        self._drain()
        if isinstance(exc, SeisfmCancelled):
            p = self._latest
            if p is None:
                where = "before its first step"
            elif self._minutes_mode and p.step < _minutes_probe() and p.total == p.step + 1:
                where = f"at step {p.step}"
            else:
                where = f"at step {p.step} of {p.total}"
            self.message = f"pretraining stopped {where}; Resume continues it ({self._run_out})"
            self.say(self.message)
            _notify.show_info(self.message)
            if self._run_out is not None and not self.out.value.strip():
                # keep the run's folder in the form, so the button says Resume
                self.name.value = self._run_name
                self.out.value = str(self._run_out)
            return
        self._show_error(exc)

    def _show_error(self, exc):
        self.message = self.error(exc)

    def _on_finished(self):
        self.progress.setFormat("step %v of %m")
        if self.progress.maximum() == 0:  # stopped before a step count was known
            self.progress.setRange(0, 1)
            self.progress.setTextVisible(False)
        if self.result is not None and not self.name.value.strip() and not self.out.value.strip():
            self._new_default_name()  # the default folder now holds a model: the next run gets a new one
        self._refresh_run_button()

    # ------------------------------------------------------------------ plot
    def _init_plot(self):
        ax = self.axes
        (self.loss_line,) = ax.plot([], [], color="C0", lw=1.0, label="training")
        (self.val_line,) = ax.plot([], [], "o-", color="C3", ms=3, label="_held out")  # in the legend once it has points
        ax.axhline(1.0, color="k", ls=":", lw=0.8, label="predicting zeros")
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.2)

    def _clear_plot(self):
        self.steps, self.losses, self.val_steps, self.val_losses = [], [], [], []
        self.loss_line.set_data([], [])
        self.val_line.set_data([], [])
        if not self.val_line.get_label().startswith("_"):
            self.val_line.set_label("_held out")
            self.axes.legend(fontsize=7, loc="upper right")
        self.canvas.draw_idle()

    def _update_plot(self):
        self.loss_line.set_data(self.steps, self.losses)
        self.val_line.set_data(self.val_steps, self.val_losses)
        ax = self.axes
        if self.val_steps and self.val_line.get_label().startswith("_"):
            self.val_line.set_label("held out")
            ax.legend(fontsize=7, loc="upper right")
        ax.set_xlim(0, max(self.steps[-1] if self.steps else 1, 1))
        # the recent curve and the "predicting zeros" line; early outliers may leave the top
        seen = [v for v in self.losses[-1000:] + self.val_losses if np.isfinite(v)] or [1.0]
        lo, hi = min(min(seen), 1.0), max(max(seen), 1.0)
        pad = 0.08 * (hi - lo) + 0.02
        ax.set_ylim(max(0.0, lo - pad), hi + pad)
        self.canvas.draw_idle()

    def _show_thumbnail(self, path: Path):
        from qtpy.QtGui import QPixmap

        pix = QPixmap(str(path))
        if pix.isNull():
            return
        self.thumbnail.setPixmap(pix.scaledToWidth(max(200, self.canvas.width()), Qt.TransformationMode.SmoothTransformation))
        self.thumbnail.setToolTip(str(path))


def _train(given, kwargs):
    """Worker body: the training source (read off the GUI thread), a size check before any folder
    is made, then ``pretrain``."""
    from ...pretrain.data import check_fits
    from ...pretrain.run import pretrain, window_size
    from ...pretrain.trainer import PretrainSettings, read_checkpoint

    sources = None
    if kwargs["resume"]:
        specs = list(read_checkpoint(kwargs["out"])["sources"])
        if any(s.partition(":")[0] not in ("cube", "images", "synthetic") for s in specs):
            spec = given[0] if given else None
            if specs != [spec]:
                raise SeisfmError(f"{kwargs['out']}: this run trains on {', '.join(specs)}; select that layer to resume it")
            sources = [_open_source(given)]
    else:
        sources = [_open_source(given)]
        window = window_size(PretrainSettings(size=kwargs["size"]))
        for src in sources:
            check_fits(src, kwargs["tokenization"], window)
    return pretrain(sources=sources, **kwargs)


def _open_source(given):
    from ...pretrain.data import array_source, open_cube_source

    spec, data = given
    if spec.startswith("cube:"):
        src = open_cube_source(spec[len("cube:") :])
    else:
        src = array_source(spec, np.asarray(data, dtype=np.float32))
    src.name = spec
    return src


def _layer_input(layer) -> tuple[str, object]:
    """(source spec, data) of a layer: ``cube:PATH`` when it has a cube file, else ``layer:NAME`` and its array."""
    path = _layer_path(layer)
    if path is not None:
        return f"cube:{path}", None
    if getattr(layer.data, "ndim", 0) != 3:
        raise SeisfmError(f"layer {layer.name!r}: a training cube must be 3-D, got shape {np.shape(layer.data)}")
    return f"layer:{layer.name}", layer.data


def _layer_path(layer) -> Path | None:
    """The cube file behind a layer (our reader's metadata, else napari's source path), if any."""
    path = layer.metadata.get("path") or getattr(getattr(layer, "source", None), "path", None)
    if not path or Path(path).suffix.lower() not in CUBE_SUFFIXES:
        return None
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise SeisfmError(f"{path}: the cube file of layer {layer.name!r} is gone")
    return p


def _has_file(layer) -> bool:
    try:
        return _layer_path(layer) is not None
    except SeisfmError:
        return False


def _plain_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")


def _model_dir() -> Path:
    from ...encoders import registry

    return registry.weight_dirs()[0]


def _minutes_probe() -> int:
    return MINUTES_PROBE


def _is_training_layer(layer) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb and not layer.multiscale


def _eta_text(seconds) -> str:
    from ...progress import format_eta

    return format_eta(seconds)


def _devices() -> list[str]:
    """The devices torch can train on (worker thread: importing torch takes seconds on a cold machine)."""
    import torch

    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def _show_extract_docks(viewer, model_id: str) -> int:
    """Add a new model to the model list of every open Extract embeddings dock (they fill it once,
    when opened); returns how many docks list it now."""
    from .extract import ExtractWidget, add_model

    try:
        docks = [w for w in viewer.window.dock_widgets.values() if isinstance(w, ExtractWidget)]
    except (AttributeError, RuntimeError):
        return 0
    for w in docks:
        add_model(w, model_id)
    return len(docks)
