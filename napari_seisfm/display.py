"""How seismic is shown, as plain data shared by every layer we make: survey-unit placement, symmetric
robust contrast, the inline view with time downward, the default vertical exaggeration, colormaps and
overlay layer names (docs/user-guide.md, "What you see").

No napari import and no viewer state here: these functions build ``(data, kwargs, layer_type)`` tuples and
numbers that the reader, the sample data, the docks and the CLI's figures use; changing a viewer is
``plugin/view.py``'s business.
"""

from __future__ import annotations

import numpy as np

from .cube import Cube, Geometry

SEISMIC_COLORS = [[0.75, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.75, 1.0]]  # red-white-blue
# colormaps as napari's plain-data form (a dict napari turns into a registered Colormap): no napari import here
SEISMIC_COLORMAP = {"colors": SEISMIC_COLORS, "name": "seismic red-white-blue"}
# transparent at low scores, yellow to red at high ones: the seismic stays readable underneath
SIMILARITY_COLORMAP = {"colors": [[1, 1, 0, 0], [1, 0.8, 0, 0.5], [1, 0, 0, 0.9]], "name": "similarity (translucent)"}
# overlay layer names shared by the Click-to-map dock and `seisfm demo`
SIMILARITY, THRESHOLDED, KNN = "similarity", "similarity > threshold", "segmentation"
IN_MEMORY_BYTES = 256 * 2**20  # smaller cubes are read at once so scrolling never waits on disk
TIME_AXIS = 2  # (inline, crossline, time/depth): the axis vertical exaggeration stretches
SECTION_ASPECT = 1.5  # default exaggeration: a section this many times wider than tall, when the canvas size is unknown
EXAGGERATION_RANGE = (1e-3, 1e3)


def axis_labels(geometry: Geometry) -> tuple[str, str, str]:
    unit = geometry.sample_unit if geometry.sample_unit in ("ms", "s", "m", "ft") else "samples"
    return ("inline", "crossline", f"{geometry.domain} ({unit})")


def world_transform(geometry: Geometry, stride=(1, 1, 1), origin=(0, 0, 0), exaggeration: float = 1.0) -> dict:
    """``scale``/``translate`` in survey units for data on the cube grid or on a strided grid of it.

    ``exaggeration`` stretches the time (depth) axis: its world coordinate is ``ms * exaggeration``
    (inline and crossline stay inline and crossline numbers).
    """
    spacing = np.asarray(geometry.spacing)
    stretch = np.ones(3)
    stretch[TIME_AXIS] = float(exaggeration)
    return {
        "scale": tuple(float(v) for v in spacing * np.asarray(stride) * stretch),
        "translate": tuple(float(v) for v in (np.asarray(geometry.origin) + spacing * np.asarray(origin)) * stretch),
        "axis_labels": axis_labels(geometry),
    }


# ---------------------------------------------------------------------- vertical exaggeration
# A section of 601 traces x 6 s at 4 ms is 600 x 6000 in survey units: drawn 1:1 it is a thin strip. Layers
# are drawn with their time axis scaled by a factor (world time = ms x factor); which factor a survey has in
# a viewer, and changing it, is the napari glue's business (plugin/view.py).


def default_exaggeration(shape, spacing, aspect: float = SECTION_ASPECT) -> float:
    """The factor that makes the default section (inline view; the line for a 2-D line) ``aspect`` times
    wider than tall (the canvas' width / height), rounded to two significant digits: trace extent /
    (time extent x aspect)."""
    order = section_order(shape)
    width = shape[order[2]] * abs(float(spacing[order[2]]))
    height = shape[TIME_AXIS] * abs(float(spacing[TIME_AXIS]))
    if width <= 0 or height <= 0:
        return 1.0
    ve = width / (height * aspect)
    ve = float(f"{ve:.2g}")
    return float(np.clip(ve, *EXAGGERATION_RANGE))


def cube_layer(
    cube: Cube, *, name: str | None = None, colormap: str = "gray", in_memory: bool | None = None, exaggeration: float = 1.0
):
    """Image layer data for a cube: lazy for big files, symmetric robust contrast, survey units (time
    stretched by ``exaggeration``: its survey's in the viewer)."""
    limit = cube.robust_amplitude(99.0) or 1.0
    if in_memory is None:
        in_memory = cube.nbytes <= IN_MEMORY_BYTES
    data = cube.read() if in_memory else cube
    kwargs = {
        "name": name or (cube.path.stem if cube.path else "seismic"),
        "contrast_limits": (-limit, limit),
        "colormap": dict(SEISMIC_COLORMAP) if colormap == "seismic" else colormap,
        "metadata": {
            "kind": "seismic",
            "path": str(cube.path) if cube.path else None,
            "geometry": cube.geometry.summary(),
            "survey": cube.geometry.fingerprint(),
        },
        **world_transform(cube.geometry, exaggeration=exaggeration),
    }
    return data, kwargs, "image"


def section_order(shape) -> tuple[int, int, int]:
    """Dims order that shows a vertical section with time downward (napari draws the last two as rows, columns).

    Inline sections for cubes; for a 2D line the axis with one position becomes the slider.
    """
    slider = 1 if shape[1] == 1 and shape[0] > 1 else 0
    other = 1 - slider
    return (slider, 2, other)


def layer_axis_labels(layer) -> tuple[str, str, str]:
    """('inline', 'crossline', 'time (ms)') from the layer's own labels or its geometry summary."""
    labels = tuple(str(a) for a in layer.axis_labels)
    if labels[:2] == ("inline", "crossline"):
        return labels
    geo = layer.metadata.get("geometry") or {}
    unit = geo.get("sample_unit")
    domain = geo.get("domain", "time")
    return ("inline", "crossline", f"{domain} ({unit})" if unit else domain)
