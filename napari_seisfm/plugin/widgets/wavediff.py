"""Dock widget "Velocity <-> seismic": the WaveDiffusion pieces on screen.

Forward-model the velocity map in an Image layer (its current 2-D slice, in m/s) into shot gathers
with the finite-difference solver; sample seismic-velocity pairs from a WaveDiffusion model (the
bundled tiny one unless you pick another) and show, beside each generated pair, the gathers the
solver makes from the generated velocity and the PDE residual between the two.

Results are not seismic of the survey: they open in a window of their own ("Velocity <-> seismic:
results"), side by side (napari's grid), in physical units (seconds, metres) with sliders named "pair"
and "shot". The model is loaded and torch imported in the worker, never on the GUI thread.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import LineEdit, SpinBox
from qtpy.QtWidgets import QPushButton

from ...errors import SeisfmCancelled, SeisfmError
from ._dock import Dock, form

RESULTS_TITLE = "Velocity <-> seismic: results"
AXES = ("pair", "shot", "time (s) | depth (m)", "receiver | x (m)")


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
            raise SeisfmCancelled("sampling stopped; nothing was kept")
        if progress:
            progress(done, total)

    z, _ = model.ddpm.sample((n, *model.latent_shape), generator=torch.Generator().manual_seed(seed), on_step=step)
    with torch.no_grad():
        s, v = model.decode(z)
    s_true = simulate_model_space(v, model.setup)
    return {
        "seismic": s.numpy(),
        "velocity": velocity_from_model(v, model.setup).numpy(),
        "simulated": s_true.numpy(),
        "deviation": (s - s_true).pow(2).flatten(1).mean(1).numpy(),
    }


def _slice_on_screen(layer, viewer) -> np.ndarray:
    """The 2-D slice of ``layer`` the viewer shows (its leading axes at the viewer's position, clipped into
    the layer: a velocity layer need not share the survey's extent)."""
    data = np.asarray(layer.data)
    if data.ndim <= 2:
        return data
    point = layer.world_to_data(viewer.dims.point[-layer.ndim :])
    lead = tuple(int(np.clip(round(float(point[k])), 0, data.shape[k] - 1)) for k in range(data.ndim - 2))
    return data[lead]


class WaveDiffWidget(Dock):
    what = "WaveDiffusion"
    needs_torch = True

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer, run_text="Forward model")
        from napari.layers import Image

        self.model = None  # (path, WaveDiffusion) last loaded, in a worker
        self.results_viewer = None
        self.layer = self.layer_picker(
            "velocity layer",
            lambda ly: isinstance(ly, Image) and not ly.rgb,
            tooltip="an Image layer of velocities in m/s (its slice on screen)",
        )
        self.model_path = LineEdit(
            label="model", tooltip="a .safetensors from seisfm wavediff train (empty: the bundled tiny model)"
        )
        self.model_path.native.setPlaceholderText("bundled tiny model")
        self.n = SpinBox(value=4, min=1, max=64, label="pairs")
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        self.forward_button = self.run_button
        self.sample_button = QPushButton("Sample pairs")
        self.body.addWidget(form(self.layer, self.model_path, self.n, self.seed).native)
        self.add_job_row(self.sample_button)
        self.body.addStretch()
        self.jobs.run_buttons = (self.forward_button, self.sample_button)
        self.forward_button.clicked.connect(self.forward)
        self.sample_button.clicked.connect(self.sample)
        self.jobs.on_teardown = self._close_results  # the results window goes with the dock or the viewer
        self.reset_choices()
        self.say("Forward-model a velocity layer, or sample seismic-velocity pairs: results open in a window of their own.")

    # ------------------------------------------------------------------ jobs
    def _path(self) -> str | None:
        return self.model_path.value.strip() or None

    def _model_in_worker(self, path):
        """The model for ``path`` (loaded once; torch is imported here, in the worker)."""
        from ...wavediff.model import load

        if self.model is None or self.model[0] != path:
            self.model = (path, load(path)[0])
        return self.model[1]

    def forward(self) -> bool:
        try:
            layer = self.layer.value
            if layer is None:
                raise SeisfmError("no Image layer with a velocity map (m/s) to forward-model")
            data = _slice_on_screen(layer, self.viewer)
        except SeisfmError as exc:
            self.error(exc)
            return False
        path = self._path()

        def job():
            setup = self._model_in_worker(path).setup
            return forward_model_slice(data, setup), setup

        self.say("forward modelling ...")
        return self.jobs.start(job, on_done=lambda r: self._show_gathers(*r))

    def sample(self) -> bool:
        path = self._path()

        def job(progress=None, cancel=None):
            model = self._model_in_worker(path)
            return model, sample_pairs(model, self.n.value, self.seed.value, progress=progress, cancel=cancel)

        self.say("sampling ...")
        return self.jobs.start(
            job, progress=self.jobs.report, cancel=self.jobs.cancel_event, on_done=lambda r: self._show_pairs(*r)
        )

    # ------------------------------------------------------------------ results
    def _close_results(self):
        if self.results_viewer is not None:
            try:  # noqa: SIM105
                self.results_viewer.close()
            except RuntimeError:  # closed by the user already
                pass
            self.results_viewer = None

    def _results(self):
        """The results window (made once, again if the user closed it), emptied for the new results."""
        import napari

        v = self.results_viewer
        try:
            if v is not None:
                v.layers.clear()
                return v
        except RuntimeError:
            pass
        v = self.results_viewer = napari.Viewer(title=RESULTS_TITLE, show=self.isVisible())
        v.grid.enabled = True
        return v

    def _add(self, v, data, name, scale, colormap):
        data = np.asarray(data, np.float32)
        while data.ndim < 4:
            data = data[None]
        v.add_image(data, name=name, colormap=colormap, scale=(1, 1, *scale))

    def _show_gathers(self, gathers, setup):
        g = setup.geometry
        v = self._results()
        drec = (g.nx - 1) * g.dx / max(g.n_receivers - 1, 1)
        self._add(v, gathers, "shot gathers (F)", (g.dt, drec), "gray")
        v.dims.axis_labels = AXES
        v.reset_view()
        self.gathers = gathers
        self.say(
            f"{gathers.shape[0]} shot gathers of {gathers.shape[1]} samples x {gathers.shape[2]} receivers "
            f"({g.nt * g.dt:g} s, {g.dt * 1000:g} ms sampling) in the window {RESULTS_TITLE!r}"
        )

    def _show_pairs(self, model, r):
        setup = model.setup
        g = setup.geometry
        v = self._results()
        t_step = g.nt * g.dt / setup.seis_size[0]
        x_step = (g.nx - 1) * g.dx / max(setup.seis_size[1] - 1, 1)
        self._add(v, r["velocity"][:, None], "generated velocity", (g.dx, g.dx), "viridis")
        self._add(v, r["seismic"], "generated seismic", (t_step, x_step), "gray")
        self._add(v, r["simulated"], "F(generated velocity)", (t_step, x_step), "gray")
        self._add(v, r["seismic"] - r["simulated"], "PDE residual", (t_step, x_step), "gray")
        v.dims.axis_labels = AXES
        v.reset_view()
        self.pairs = r
        dev = r["deviation"]
        self.say(
            f"{len(dev)} pairs in the window {RESULTS_TITLE!r}; PDE deviation mean {dev.mean():.5f} (per pair: "
            + ", ".join(f"{d:.4f}" for d in dev)
            + ")"
        )
