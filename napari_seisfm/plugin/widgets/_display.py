"""The "Display" box of the Click-to-map dock: the survey's vertical exaggeration and where the section is,
in survey units. Fit is also Layers > Visualize > Fit seismic section and the Shift-F key (plugin/view.py)."""

from __future__ import annotations

from qtpy.QtWidgets import QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton

from ... import display
from ...errors import SeisfmError
from .. import view


class DisplayBox(QGroupBox):
    def __init__(self, viewer, seismic_layer):
        """``seismic_layer()`` returns the layer whose survey this box shows (or raises SeisfmError)."""
        super().__init__("Display")
        self.viewer = viewer
        self._seismic_layer = seismic_layer
        self.exaggeration = QDoubleSpinBox()
        self.exaggeration.setDecimals(3)
        self.exaggeration.setRange(*display.EXAGGERATION_RANGE)
        self.exaggeration.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        self.exaggeration.setKeyboardTracking(False)
        self.exaggeration.setToolTip(
            "vertical exaggeration of this survey: world time = ms x this factor (for every "
            "layer of the survey, so clicks and overlays stay aligned); the default fills "
            "the canvas with the section"
        )
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip(f"the default exaggeration for the seismic layer, and reset the view ({view.FIT_KEY})")
        self.position = QLabel("")
        form = QFormLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.exaggeration)
        row.addWidget(self.fit_button)
        form.addRow("vertical exaggeration", row)
        form.addRow("section", self.position)

        self.exaggeration.valueChanged.connect(self.set_exaggeration)
        self.fit_button.clicked.connect(self.fit)
        view.on_exaggeration(viewer, lambda survey, value: self.sync() if survey == self._survey() else None)
        viewer.dims.events.point.connect(self._show_position)
        viewer.dims.events.order.connect(self._show_position)

    def _survey(self) -> str | None:
        try:
            return view.survey_of(self._seismic_layer())
        except SeisfmError:
            return None

    def sync(self):
        """The spin box shows the survey's factor (orient_viewer sets the default after a cube lands)."""
        self.exaggeration.blockSignals(True)
        self.exaggeration.setValue(view.exaggeration(self.viewer, self._survey()))
        self.exaggeration.blockSignals(False)
        self._show_position()

    def set_exaggeration(self, value: float) -> float:
        """Stretch time by ``value`` on every 3-D layer of the survey (clicks stay in survey units) and refit the view."""
        value = view.set_exaggeration(self.viewer, value, self._survey())
        self.sync()
        view.reset_view(self.viewer)
        return value

    def fit(self) -> float:
        """Back to the default factor for the seismic layer's geometry (SeisfmError without one)."""
        value = view.fit(self.viewer, view.survey_of(self._seismic_layer()))
        self.sync()
        return value

    def _show_position(self, event=None):
        """'inline 1064' for the slider (napari's own slider shows the index, 64 of 127)."""
        dims = self.viewer.dims
        if dims.ndim != 3 or dims.ndisplay != 2:
            self.position.setText("")
            return
        axis = dims.not_displayed[0]
        value = view.world_to_survey(self.viewer, dims.point, self._survey())[axis]
        name, _, unit = str(dims.axis_labels[axis]).partition(" (")
        self.position.setText(f"{name} {value:g}{' ' + unit.rstrip(')') if unit else ''}")
