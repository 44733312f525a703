"""The "Display" box of the Click-to-map dock: vertical exaggeration and where the section is, in survey units."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton

from ... import display


class DisplayBox(QGroupBox):
    def __init__(self, viewer, seismic_layer):
        """``seismic_layer()`` returns the layer the default exaggeration is fitted to (or raises SeisfmError)."""
        super().__init__("Display")
        self.viewer = viewer
        self._seismic_layer = seismic_layer
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
        form = QFormLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.exaggeration)
        row.addWidget(self.fit_button)
        form.addRow("vertical exaggeration", row)
        form.addRow("section", self.position)

        self.exaggeration.valueChanged.connect(self.set_exaggeration)
        self.fit_button.clicked.connect(self.fit)
        display.on_exaggeration(viewer, lambda _: self.sync())
        viewer.dims.events.point.connect(self._show_position)
        viewer.dims.events.order.connect(self._show_position)

    def sync(self):
        """The spin box shows the viewer's factor (orient_viewer sets the default after a cube lands)."""
        self.exaggeration.blockSignals(True)
        self.exaggeration.setValue(display.viewer_exaggeration(self.viewer))
        self.exaggeration.blockSignals(False)
        self._show_position()

    def set_exaggeration(self, value: float) -> float:
        """Stretch time by ``value`` on every 3-D layer (clicks stay in survey units) and refit the view."""
        value = display.set_exaggeration(self.viewer, value)
        self.sync()
        self.viewer.reset_view()
        return value

    def fit(self) -> float:
        """Back to the default factor for the seismic layer's geometry (SeisfmError without one)."""
        layer = self._seismic_layer()
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
        name, _, unit = str(dims.axis_labels[axis]).partition(" (")
        self.position.setText(f"{name} {value:g}{' ' + unit.rstrip(')') if unit else ''}")
