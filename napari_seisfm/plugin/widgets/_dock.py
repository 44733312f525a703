"""What every dock has, once: a scrolling body that fits a laptop screen, layer pickers that follow the
viewer, a magicgui form, Run / Cancel, a progress bar with the time left, a status line, and the
:class:`._jobs.JobController` that runs its work off the GUI thread.

A dock subclasses :class:`Dock`, fills ``self.body`` top to bottom (pickers, form, :meth:`add_job_row`),
and starts its work with ``self.jobs.start(fn, ..., progress=self.jobs.report, cancel=self.jobs.cancel_event)``.
Errors reach the user as one line (:meth:`error`), results as a status line saying where they went and what
to do next (:meth:`say`). Docks of this plugin opened side by side become tabs of one dock area, so at
1920x1080 each keeps the full height instead of a fifth of it.
"""

from __future__ import annotations

from collections.abc import Callable

from magicgui.widgets import ComboBox, Container
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from ...errors import SeisfmError
from ..warmup import FIRST_USE, TORCH, warm_up
from . import _notify
from ._jobs import JobController
from ._scroll import scrolling_layout


class Dock(QWidget):
    """Base of the plugin's docks (see the module docstring)."""

    what = "job"  # the work's name in error messages
    needs_torch = False  # its jobs import torch: warmed up in the background when the dock opens

    def __init__(self, napari_viewer, *, run_text: str = "Run", scroll: bool = True):
        super().__init__()
        self.viewer = napari_viewer
        self._pickers: list[ComboBox] = []
        if scroll:
            self.body = scrolling_layout(self)
        else:
            from qtpy.QtWidgets import QVBoxLayout

            self.body = QVBoxLayout(self)
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("stop now; what is finished is kept, and Run continues from there")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = StatusLine()
        self.jobs = JobController(
            self,
            run_buttons=[self.run_button],
            cancel_button=self.cancel_button,
            progress_bar=self.progress,
            what=self.what,
            viewer=napari_viewer,
            on_detail=self.say,
        )
        for event in ("inserted", "removed", "reordered"):
            getattr(self.viewer.layers.events, event).connect(self.reset_choices)
        self._tabs = _TabWithSiblings(self)
        warm_up(*FIRST_USE, *(TORCH if self.needs_torch else ()))

    # ------------------------------------------------------------------ building
    def layer_picker(self, label: str, accepts: Callable, *, none: str | None = None, tooltip: str = "") -> ComboBox:
        """A magicgui combo box of the viewer's layers that ``accepts(layer)``, refreshed as layers come and
        go; its ``value`` is the layer (or None, listed as ``none`` when given)."""
        viewer = self.viewer

        def choices(_widget=None):
            layers = [(layer.name, layer) for layer in viewer.layers if _accepts(accepts, layer)]
            return ([(none, None)] if none is not None else []) + layers

        picker = ComboBox(choices=choices, label=label, tooltip=tooltip)
        self._pickers.append(picker)
        return picker

    def add_job_row(self, *extra_buttons) -> None:
        """Run, the extra buttons, Cancel on one row; then the progress bar and the status line."""
        row = QHBoxLayout()
        for b in (self.run_button, *extra_buttons, self.cancel_button):
            row.addWidget(b)
        self.body.addLayout(row)
        self.body.addWidget(self.progress)
        self.body.addWidget(self.status)

    # ------------------------------------------------------------------ state
    def reset_choices(self, *_):
        """Refill every layer picker (napari also calls this when the layer list changes)."""
        for picker in self._pickers:
            try:
                picker.reset_choices()
            except RuntimeError:  # the dock is being destroyed
                return

    def say(self, text: str) -> None:
        self.status.say(text)

    def error(self, exc: BaseException) -> str:
        """One notification for a problem, and the same line on the status line."""
        message = _notify.report(exc, self.what)
        self.say(message if isinstance(exc, SeisfmError) else f"{self.what} failed: {exc.__class__.__name__}: {exc}")
        return message


def select(picker: ComboBox, name: str) -> None:
    """Choose the layer called ``name`` in a layer picker (scripts, tests)."""
    picker.reset_choices()
    for choice_name, layer in _choice_items(picker):
        if choice_name == name:
            picker.value = layer
            return
    raise SeisfmError(f"no layer {name!r} to choose in {picker.label!r}")


def _choice_items(picker: ComboBox):
    native = picker.native
    return [(native.itemText(i), native.itemData(i)) for i in range(native.count())]


def _accepts(accepts, layer) -> bool:
    try:
        return bool(accepts(layer))
    except Exception:  # noqa: BLE001 - a layer the predicate cannot judge is not offered
        return False


class StatusLine(QLabel):
    """A wrapped, selectable line of text that never widens its dock (long paths wrap at their slashes)."""

    def __init__(self, text: str = ""):
        super().__init__()
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.setMinimumWidth(0)
        self.say(text)

    def say(self, text: str) -> None:
        self.plain = str(text)
        self.setText(self.plain.replace("/", "/\u200b"))  # a break opportunity after each slash of a path

    def text_plain(self) -> str:
        return self.plain


def form(*widgets) -> Container:
    """A labelled magicgui form flush with the rows above it; widgets added one by one so magicgui lines
    up their labels (it does not for ``Container(widgets=...)``)."""
    box = Container()
    box.margins = (0, 0, 0, 0)
    box.extend(widgets)
    return box


def row(label: str, *widgets) -> Container:
    """Widgets side by side on one labelled row of a form, the first one taking the spare width."""
    box = Container(widgets=widgets, layout="horizontal", labels=False, label=label)
    box.margins = (0, 0, 0, 0)
    box.native.layout().setStretch(0, 1)
    return box


class _TabWithSiblings(QObject):
    """The first time the dock is shown in a main window, it becomes a tab beside the plugin's other docks
    in the same area (napari stacks docks opened from the Plugins menu, a fifth of the height each)."""

    def __init__(self, dock: QWidget):
        super().__init__(dock)
        self._dock = dock
        dock.installEventFilter(self)

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Show and self._dock is not None:
            dock, self._dock = self._dock, None
            obj.removeEventFilter(self)
            tabify_with_siblings(dock)
        return False


def tabify_with_siblings(widget: QWidget) -> bool:
    """Make the dock holding ``widget`` a tab of another seisfm dock in its area; False when alone there."""
    window = widget.window()
    if not isinstance(window, QMainWindow):
        return False
    mine = dock_of(widget)
    if mine is None or window.dockWidgetArea(mine) == Qt.DockWidgetArea.NoDockWidgetArea:
        return False
    area = window.dockWidgetArea(mine)
    for other in window.findChildren(QDockWidget):
        if other is mine or not other.isVisible() or window.dockWidgetArea(other) != area:
            continue
        if isinstance(other.widget(), Dock) or other.widget() is not None and other.widget().findChild(Dock) is not None:
            window.tabifyDockWidget(other, mine)
            mine.show()
            mine.raise_()
            return True
    return False


def dock_of(widget: QWidget):
    """The QDockWidget holding ``widget`` (None outside one)."""
    w = widget
    while w is not None and not isinstance(w, QDockWidget):
        w = w.parentWidget()
    return w
