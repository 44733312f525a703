"""The acoustic forward model against the analytic 2-D solution, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_seisfm.errors import SeisfmError
from napari_seisfm.wavediff.forward import CFL_LIMIT, OPENFWI, Geometry, simulate

V1 = 2000.0
GRID = Geometry(nz=100, nx=100, nt=700, n_sources=1, n_receivers=100)  # one source at x = 0, on the surface row


def analytic(r: float, v: float, g: Geometry) -> np.ndarray:
    """2-D Green's function convolved with the Ricker: the integral over w of f(t - (r/v) cosh w)."""
    w = np.linspace(0, 8, 4001)
    t = np.arange(g.nt) * g.dt
    a = (np.pi * g.freq * (t[:, None] - (r / v) * np.cosh(w)[None] - 1 / g.freq)) ** 2
    return np.trapezoid((1 - 2 * a) * np.exp(-a), w, axis=1)


@pytest.fixture(scope="module")
def homogeneous():
    return simulate(np.full((GRID.nz, GRID.nx), V1), GRID)[0].numpy()


@pytest.mark.parametrize("col", [5, 20, 50, 99])
def test_direct_wave_arrives_on_time_along_the_surface(homogeneous, col):
    trace, exact = homogeneous[:, col], analytic(col * GRID.dx, V1, GRID)
    assert abs(int(np.argmax(np.abs(trace))) - int(np.argmax(np.abs(exact)))) <= 1
    assert np.corrcoef(trace, exact)[0, 1] > 0.95


@pytest.mark.parametrize("col", [0, 10, 30])
def test_reflection_from_a_flat_interface_arrives_on_time(homogeneous, col):
    v = np.full((GRID.nz, GRID.nx), V1)
    v[40:] = 3000.0  # interface between rows 39 and 40, i.e. at 39.5 cells; source and receivers on row 1
    reflected = simulate(v, GRID)[0].numpy()[:, col] - homogeneous[:, col]
    image = analytic(np.hypot(col * GRID.dx, 2 * (39.5 - GRID.depth) * GRID.dx), V1, GRID)
    assert abs(int(np.argmax(np.abs(reflected))) - int(np.argmax(np.abs(image)))) <= 1
    assert np.corrcoef(reflected, image)[0, 1] > 0.9
    assert reflected[np.argmax(np.abs(reflected))] * image[np.argmax(np.abs(image))] > 0  # faster below: same polarity


def test_batches_are_independent():
    g = Geometry(nz=24, nx=24, nt=120, n_sources=2, n_receivers=24, pad=12)
    rng = np.random.default_rng(0)
    v = rng.uniform(1500, 4500, (3, 24, 24))
    both = simulate(v, g)
    assert both.shape == (3, 2, 120, 24)
    assert torch.allclose(both[1], simulate(v[1], g), atol=1e-6)
    assert torch.allclose(simulate(v, g, batch=2), both, atol=1e-6)


def test_openfwi_geometry_shapes():
    g = OPENFWI
    assert (g.nz, g.nx, g.dx, g.nt, g.dt, g.freq, g.n_sources, g.n_receivers) == (70, 70, 10.0, 1000, 0.001, 15.0, 5, 70)
    assert g.source_x() == [0, 17, 34, 52, 69]
    out = simulate(np.full((70, 70), 3000.0), g)
    assert out.shape == (5, 1000, 70) and torch.isfinite(out).all()


def test_unstable_time_step_is_refused_with_the_cfl_number():
    g = Geometry(nz=10, nx=10, nt=10, dt=0.002, n_receivers=10)
    with pytest.raises(SeisfmError, match=r"CFL number .* = 0\.900 exceeds the limit 0\.555"):
        simulate(np.full((10, 10), 2000.0), g)
    assert 0.55 < CFL_LIMIT < 0.56


def test_velocity_faster_than_the_geometry_allows_is_refused():
    g = Geometry(nz=10, nx=10, nt=10, n_receivers=10)
    with pytest.raises(SeisfmError, match="CFL number"):
        simulate(np.full((10, 10), 6000.0), g)


@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (0.0, "non-positive"), (-1500.0, "non-positive")])
def test_bad_velocities_are_refused(bad, what):
    v = np.full((10, 10), 2000.0)
    v[3, 4] = bad
    with pytest.raises(SeisfmError, match=what):
        simulate(v, Geometry(nz=10, nx=10, nt=10, n_receivers=10))


def test_wrong_shape_is_refused():
    with pytest.raises(SeisfmError, match=r"expects \(N, 10, 10\)"):
        simulate(np.full((12, 10), 2000.0), Geometry(nz=10, nx=10, nt=10, n_receivers=10))


def test_the_in_place_solver_gives_the_gathers_of_the_reference_loop_bit_for_bit():
    """The time loop writes into buffers made once (issue 24); the arithmetic is the plain formula's, operation for
    operation, so its gathers equal those of the loop that allocated a tensor per term (tests/forward_reference.py)."""
    from forward_reference import _propagate as reference

    from napari_seisfm.wavediff.forward import _propagate

    g = Geometry(nz=30, nx=26, nt=160, n_sources=3, n_receivers=26, pad=12)
    rng = np.random.default_rng(3)
    v = torch.as_tensor(rng.uniform(1500, 4000, (2, 30, 26)), dtype=torch.float32)
    ours, ref = _propagate(v, g), reference(v, g)
    assert float(ref.abs().max()) > 1e-3  # waves arrived at the receivers
    assert torch.equal(ours, ref)
