"""Survey coordinates (inline number, crossline number, time/depth) <-> cube indices.

The geometry comes from ``Geometry.summary()`` as stored in a feature volume's ``cube_geometry`` attrs:
``"ilines": [first, last, step]``, ``"xlines": [first, last, step]``, ``"samples": [first, last, step]``
(ms or m, ``"sample_unit"``). Irregular axes are not described by that summary, so only regular ones
are supported here.
"""

from __future__ import annotations

import numpy as np

from ..errors import SeisfmError

AXES = (("ilines", "inline"), ("xlines", "crossline"), ("samples", "time"))


def _axis(summary: dict, key: str) -> tuple[float, float, float]:
    try:
        first, last, step = (float(v) for v in summary[key])
    except (KeyError, TypeError, ValueError):
        raise SeisfmError(
            f"feature volume has no usable cube geometry ({key!r} missing); give grid indices instead of survey coordinates"
        ) from None
    if step == 0:
        step = 1.0
    return first, last, step


def survey_to_cube_index(summary: dict | None, il: float, xl: float, t: float) -> np.ndarray:
    """Fractional cube index ``(i, x, s)`` of a point given in survey units; out of range is an error.

    A point up to half a step outside the first/last line still snaps onto it.
    """
    summary = summary or {}
    out = []
    for (key, name), value in zip(AXES, (il, xl, t)):
        first, last, step = _axis(summary, key)
        idx = (float(value) - first) / step
        n = round((last - first) / step)
        if not (-0.5 <= idx <= n + 0.5) or not np.isfinite(idx):
            unit = summary.get("sample_unit", "ms") if key == "samples" else ""
            lo, hi = sorted((first, last))
            raise SeisfmError(
                f"point ({il:g}, {xl:g}, {t:g}) is outside the volume: {name} {float(value):g} not in {lo:g}..{hi:g} {unit}".rstrip()
            )
        out.append(min(max(idx, 0.0), float(n)))
    return np.asarray(out)


def cube_index_to_survey(summary: dict | None, index) -> tuple[float, float, float] | None:
    """Survey coordinates of a cube index, or None without a usable geometry."""
    summary = summary or {}
    try:
        return tuple(_axis(summary, key)[0] + _axis(summary, key)[2] * float(i) for (key, _), i in zip(AXES, index))
    except SeisfmError:
        return None
