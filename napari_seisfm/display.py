"""How seismic is shown: the conventions of DESIGN.md as plain data, shared by every layer we make.

No napari import here: these functions build ``(data, kwargs, layer_type)`` tuples and viewer
settings that the reader, the sample data, the widgets and the CLI screenshots all use.
"""

from __future__ import annotations

import weakref

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
    (inline and crossline stay inline and crossline numbers); see :func:`set_exaggeration`.
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
# A section of 601 traces x 6 s at 4 ms is 600 x 6000 in survey units: drawn 1:1 it is a thin strip. Every
# 3-D layer of a viewer has its time axis scaled by the same factor (layer.scale / translate), so overlays,
# clicks and slices stay aligned; world time = ms x factor, survey time = world / factor.
_EXAGGERATION: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_STATUS_HOOKED: "weakref.WeakSet" = weakref.WeakSet()
_LISTENERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def on_exaggeration(viewer, callback) -> None:
    """Call ``callback(value)`` whenever :func:`set_exaggeration` changes ``viewer``'s factor (a dock's spin box)."""
    _LISTENERS.setdefault(viewer, []).append(callback)


def ensure_exaggeration(viewer, shape, spacing) -> float:
    """The viewer's factor; the default for a cube of ``shape`` and survey ``spacing`` when it has none yet
    (the first cube decides; layers already there are stretched with it)."""
    if viewer is None:
        return 1.0
    if not has_exaggeration(viewer):
        set_exaggeration(viewer, default_exaggeration(shape, spacing, canvas_aspect(viewer)))
    return viewer_exaggeration(viewer)


def canvas_aspect(viewer) -> float:
    """Width / height of the viewer's canvas (docks make it narrow), within 0.75..2; SECTION_ASPECT when unknown."""
    try:
        height, width = (float(v) for v in viewer.canvas.size)
    except (AttributeError, TypeError, ValueError):
        return SECTION_ASPECT
    if min(width, height) < 100:  # not laid out yet
        return SECTION_ASPECT
    return float(np.clip(width / height, 0.75, 2.0))


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


def viewer_exaggeration(viewer) -> float:
    """The viewer's vertical exaggeration (1 until one is set)."""
    return _EXAGGERATION.get(viewer, 1.0)


def has_exaggeration(viewer) -> bool:
    return viewer in _EXAGGERATION


def set_exaggeration(viewer, value: float) -> float:
    """Stretch the time axis of every 3-D layer of ``viewer`` to ``value`` (from the current factor).

    Scale and translate along time change by ``value / current`` for images, labels, points (whose data
    stay in survey units: their scale carries the factor) and anything else 3-D; the slice on screen
    stays the same. Layers added later must be made with :func:`viewer_exaggeration` (``world_transform(...,
    exaggeration=...)``, or ``scale=(1, 1, factor)`` for points in survey units) or copy a layer's scale.
    """
    value = float(np.clip(float(value), *EXAGGERATION_RANGE))
    factor = value / viewer_exaggeration(viewer)
    first = not has_exaggeration(viewer)
    _EXAGGERATION[viewer] = value
    if factor == 1.0 and not first:
        return value
    point = list(viewer.dims.point)
    for layer in viewer.layers:
        if layer.ndim != 3:
            continue
        scale, translate = np.array(layer.scale, float), np.array(layer.translate, float)
        scale[TIME_AXIS] *= factor
        translate[TIME_AXIS] *= factor
        layer.scale, layer.translate = scale, translate
    if len(point) == 3:
        viewer.dims.set_point(TIME_AXIS, point[TIME_AXIS] * factor)
    for callback in list(_LISTENERS.get(viewer, ())):
        try:
            callback(value)
        except RuntimeError:  # a closed dock (its Qt object is gone)
            _LISTENERS[viewer].remove(callback)
    return value


def to_survey(viewer, world) -> np.ndarray:
    """World coordinates (inline, crossline, time x factor) -> survey units (inline, crossline, ms)."""
    p = np.array(world, float)
    p[..., TIME_AXIS] /= viewer_exaggeration(viewer)
    return p


def to_world(viewer, survey) -> np.ndarray:
    p = np.array(survey, float)
    p[..., TIME_AXIS] *= viewer_exaggeration(viewer)
    return p


def survey_status(viewer, world=None) -> str:
    """'inline 1064, crossline 1155, time 1200 ms' for a world position (default: the cursor)."""
    if world is None:
        world = viewer.cursor.position
    if len(world) != 3:
        return ""
    il, xl, t = to_survey(viewer, world)
    label = str(viewer.dims.axis_labels[TIME_AXIS])
    name, _, unit = label.partition(" (")
    unit = unit.rstrip(")")
    return f"inline {il:.0f}, crossline {xl:.0f}, {name or 'time'} {t:.0f}{' ' + unit if unit else ''}"


def show_survey_coordinates(viewer) -> None:
    """Make the status bar read survey units (inline, crossline, ms) whatever the exaggeration: napari
    writes world coordinates there, and world time is ms x factor."""
    if viewer in _STATUS_HOOKED:
        return

    def _on_status(event=None):
        status = viewer.status
        if not isinstance(status, dict) or not status.get("coords") or status.get("coords", "").startswith("inline "):
            return
        if not getattr(viewer, "mouse_over_canvas", True):  # no cursor on the section: nothing to translate
            return
        coords = survey_status(viewer)
        if not coords:
            return
        value = status.get("value", "")
        viewer.status = {**status, "coords": coords, "coordinates": f"{coords}: {value}" if value else coords}

    viewer.events.status.connect(_on_status)
    _STATUS_HOOKED.add(viewer)


def cube_layer(cube: Cube, *, name: str | None = None, colormap: str = "gray", in_memory: bool | None = None,
               exaggeration: float = 1.0):
    """Image layer data for a cube: lazy for big files, symmetric robust contrast, survey units (time
    stretched by ``exaggeration``: the viewer's, see :func:`set_exaggeration`)."""
    limit = cube.robust_amplitude(99.0) or 1.0
    if in_memory is None:
        in_memory = cube.nbytes <= IN_MEMORY_BYTES
    data = cube.read() if in_memory else cube
    kwargs = {
        "name": name or (cube.path.stem if cube.path else "seismic"),
        "contrast_limits": (-limit, limit),
        "colormap": dict(SEISMIC_COLORMAP) if colormap == "seismic" else colormap,
        "metadata": {"kind": "seismic", "path": str(cube.path) if cube.path else None, "geometry": cube.geometry.summary()},
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


def orient_viewer(viewer, layer) -> None:
    """Put ``viewer`` in the default seismic view for ``layer``: an inline section, time increasing
    downward, stretched vertically so that the section fills most of the canvas (the first time only:
    an exaggeration the user chose is kept), status bar in survey units."""
    if layer.ndim != 3:
        return
    viewer.dims.order = section_order(layer.data.shape)
    if not has_exaggeration(viewer):
        spacing = np.asarray(layer.scale, float) / np.array([1.0, 1.0, viewer_exaggeration(viewer)])
        set_exaggeration(viewer, default_exaggeration(layer.data.shape, spacing, canvas_aspect(viewer)))
    viewer.dims.axis_labels = layer_axis_labels(layer)
    show_survey_coordinates(viewer)
    slider = viewer.dims.order[0]
    viewer.dims.set_current_step(slider, layer.data.shape[slider] // 2)
    viewer.reset_view()


def layer_axis_labels(layer) -> tuple[str, str, str]:
    """('inline', 'crossline', 'time (ms)') from the layer's own labels or its geometry summary."""
    labels = tuple(str(a) for a in layer.axis_labels)
    if labels[:2] == ("inline", "crossline"):
        return labels
    geo = layer.metadata.get("geometry") or {}
    unit = geo.get("sample_unit")
    domain = geo.get("domain", "time")
    return ("inline", "crossline", f"{domain} ({unit})" if unit else domain)


def orient_when_added(viewer) -> None:
    """Orient ``viewer`` once the next seismic layer lands in it (readers cannot reach the viewer otherwise)."""

    def _on_insert(event):
        layer = event.value
        if layer.metadata.get("kind") == "seismic":
            viewer.layers.events.inserted.disconnect(_on_insert)
            orient_viewer(viewer, layer)

    viewer.layers.events.inserted.connect(_on_insert)
