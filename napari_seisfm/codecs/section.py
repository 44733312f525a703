"""Pick the 2D section of a cube that the comparison runs on (``inline=N``, ``crossline=N``, ``time=T``)."""

from __future__ import annotations

import math

from ..errors import SeisfmError

AXIS_NAMES = {"inline": 0, "il": 0, "crossline": 1, "xl": 1, "time": 2, "depth": 2, "sample": 2}


def parse_section(spec: str) -> tuple[int, float]:
    """ "inline=1200" -> (0, 1200.0)."""
    key, sep, value = spec.partition("=")
    axis = AXIS_NAMES.get(key.strip().lower())
    if not sep or axis is None:
        raise SeisfmError(f"--section {spec!r}: expected inline=N, crossline=N or time=T")
    try:
        number = float(value)
    except ValueError:
        raise SeisfmError(f"--section {spec!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise SeisfmError(f"--section {spec!r}: {value!r} is not a finite number")
    return axis, number


def read_section(cube, spec: str | None = None):
    """(section (traces, samples), sample interval in ms or None, label) from a Cube.

    Without ``spec``: a 2D line is taken whole; a 3D cube gives its middle inline. A time slice has
    no time axis, so its sample interval is None (spectra then run along crosslines, per trace).
    """
    g = cube.geometry
    ni, nx, nt = cube.shape
    dt = float(g.spacing[2]) if g.sample_unit == "ms" else None
    if spec is None:
        if ni == 1 or nx == 1:
            data = cube[0] if ni == 1 else cube[:, 0]
            return data, dt, f"whole line ({data.shape[0]} traces x {data.shape[1]} samples)"
        spec = f"inline={g.ilines[ni // 2]}"
    axis, value = parse_section(spec)
    number = int(value) if axis < 2 and value == int(value) else value
    if axis == 0:
        return cube.inline(number), dt, f"inline {number}"
    if axis == 1:
        return cube.crossline(number), dt, f"crossline {number}"
    return cube.time_slice(value), None, f"{g.domain} slice {value:g} {g.sample_unit}"
