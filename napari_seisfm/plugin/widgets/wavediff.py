"""Dock widget "Velocity <-> seismic": the WaveDiffusion pieces on screen.

Forward-model the velocity map in an Image layer (its current 2-D slice, in m/s) into shot gathers
with the finite-difference solver; sample seismic-velocity pairs from a WaveDiffusion model (the
bundled tiny one unless you pick another) and show, beside each generated pair, the gathers the
solver makes from the generated velocity and the PDE residual between the two.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...errors import SeisfmCancelled, SeisfmError
from ._jobs import JobController


def forward_model_slice(data: np.ndarray, setup) -> np.ndarray:
    """A 2-D velocity slice (m/s) -> shot gathers (shots, nt, receivers) on the setup's grid."""
    import torch

    from ...wavediff.data import resize
    from ...wavediff.forward import check_velocity, simulate

    v = np.asarray(data, dtype=np.float32)
    if v.ndim != 2:
        raise SeisfmError(f"velocity layer slice of shape {v.shape}; a 2-D map is needed")
    check_velocity(v, "velocity layer")
    g = setup.geometry
    grid = resize(torch.as_tensor(v)[None, None], (g.nz, g.nx))[0, 0]
    return simulate(grid, g).numpy()


def sample_pairs(model, n: int, seed: int, progress=None, cancel=None) -> dict:
    """Generated pairs, the solver's gathers for the generated velocities, and the per-pair PDE residual."""
    import torch

    from ...wavediff.data import simulate_model_space, velocity_from_model

    def step(done, total):
        if cancel is not None and cancel.is_set():
            raise SeisfmCancelled("sampling cancelled")
        if progress:
            progress(done, total)

    z, _ = model.ddpm.sample((n, *model.latent_shape), generator=torch.Generator().manual_seed(seed), on_step=step)
    with torch.no_grad():
        s, v = model.decode(z)
    s_true = simulate_model_space(v, model.setup)
    return {"seismic": s.numpy(), "velocity": velocity_from_model(v, model.setup).numpy(), "simulated": s_true.numpy(),
            "deviation": (s - s_true).pow(2).flatten(1).mean(1).numpy()}


class WaveDiffWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model = None
        self.layer = QComboBox()
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("bundled tiny model (or a .safetensors from seisfm wavediff train)")
        self.n = QSpinBox()
        self.n.setRange(1, 64)
        self.n.setValue(4)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.forward_button = QPushButton("Forward model")
        self.sample_button = QPushButton("Sample pairs")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("velocity layer", self.layer)
        form.addRow("model", self.model_path)
        form.addRow("pairs", self.n)
        form.addRow("seed", self.seed)
        buttons = QHBoxLayout()
        for b in (self.forward_button, self.sample_button, self.cancel_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()
        self.jobs = JobController(self, run_buttons=[self.forward_button, self.sample_button], cancel_button=self.cancel_button,
                                  progress_bar=self.progress, what="WaveDiffusion", viewer=napari_viewer)
        self.forward_button.clicked.connect(self.forward)
        self.sample_button.clicked.connect(self.sample)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    def _refresh_layers(self, *_):
        from napari.layers import Image

        current = self.layer.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        self.layer.clear()
        self.layer.addItems(names)
        if current in names:
            self.layer.setCurrentText(current)

    def _load_model(self):
        from ...wavediff.model import load

        path = self.model_path.text().strip() or None
        if self.model is None or self.model[0] != path:
            self.model = (path, load(path)[0])
        return self.model[1]

    def forward(self) -> bool:
        from ._notify import report

        try:
            name = self.layer.currentText()
            if not name:
                raise SeisfmError("no Image layer with a velocity map (m/s) to forward-model")
            layer = self.viewer.layers[name]
            data = np.asarray(layer.data)
            if data.ndim > 2:  # the slice on screen
                data = data[tuple(self.viewer.dims.current_step[-data.ndim:-2])]
            setup = self._load_model().setup
        except SeisfmError as exc:
            self.status.setText(report(exc, "forward modelling"))
            return False
        self.status.setText("forward modelling ...")
        return self.jobs.start(forward_model_slice, data, setup, on_done=self._show_gathers)

    def _show_gathers(self, gathers):
        self.viewer.add_image(gathers, name="shot gathers (F)", colormap="gray")
        self.status.setText(f"{gathers.shape[0]} shot gathers of {gathers.shape[1]} samples x {gathers.shape[2]} receivers")

    def sample(self) -> bool:
        from ._notify import report

        try:
            model = self._load_model()
        except SeisfmError as exc:
            self.status.setText(report(exc, "sampling"))
            return False
        self.status.setText("sampling ...")
        return self.jobs.start(sample_pairs, model, self.n.value(), self.seed.value(), progress=self.jobs.report,
                               cancel=self.jobs.cancel_event, on_done=self._show_pairs)

    def _show_pairs(self, r):
        self.viewer.add_image(r["velocity"], name="generated velocity", colormap="viridis")
        self.viewer.add_image(r["seismic"], name="generated seismic", colormap="gray")
        self.viewer.add_image(r["simulated"], name="F(generated velocity)", colormap="gray")
        self.viewer.add_image(r["seismic"] - r["simulated"], name="PDE residual", colormap="gray")
        dev = r["deviation"]
        self.status.setText(f"{len(dev)} pairs; PDE deviation mean {dev.mean():.5f} (per pair: "
                            + ", ".join(f"{d:.4f}" for d in dev) + ")")
