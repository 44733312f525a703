"""The seismic view in a napari viewer: vertical exaggeration per survey, the inline view, the survey-unit
status bar, and a view that stays fitted to the data. Everything here changes a viewer; the pure
conventions (survey-unit transforms, the default exaggeration of a section) are :mod:`napari_seisfm.display`.

**Exaggeration belongs to a survey.** A section of 601 traces x 6 s at 4 ms is 600 x 6000 in survey units:
drawn 1:1 it is a thin strip. Each survey opened in a viewer gets its own factor (the default fills the
canvas with its inline section), and every layer of that survey (the seismic, its feature colours, the
maps, the clicks, the training labels) has its time axis scaled by it, so they stay aligned: world time =
ms x factor. A layer belongs to the survey of its cube: ``metadata["survey"]``, or the fingerprint of the
geometry or feature store it carries (:func:`survey_of`). A second survey opened in the same window gets
its own default instead of the first one's.

**The view stays fitted.** The view is refit when a new survey is opened and when the canvas changes size
(a dock opened or closed beside it), unless the user has zoomed or panned since the last fit. Fit is a
menu entry (Layers > Visualize) and a key (Shift-F) as well as the Click-to-map dock's button.
"""

from __future__ import annotations

import weakref

import napari.viewer
import numpy as np

from ..display import (
    EXAGGERATION_RANGE,
    SECTION_ASPECT,
    TIME_AXIS,
    default_exaggeration,
    layer_axis_labels,
    section_order,
)

FIT_KEY = "Shift-F"
_FACTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # viewer -> {survey: factor}
_LISTENERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # viewer -> [callback(survey, factor)]
_HOOKED: weakref.WeakSet = weakref.WeakSet()  # viewers whose status bar, fit key and canvas watch are set up
_FITTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # viewer -> camera (center, zoom) after our last fit


# ---------------------------------------------------------------------- which survey a layer belongs to
def survey_of(layer) -> str | None:
    """The survey (cube geometry fingerprint) ``layer`` belongs to, None for layers of no survey."""
    md = getattr(layer, "metadata", None) or {}
    return (
        md.get("survey")
        or (md.get("geometry") or {}).get("fingerprint")
        or (md.get("feature_volume") or {}).get("cube_fingerprint")
        or None
    )


def active_survey(viewer) -> str | None:
    """The survey being looked at: the selected layer's, else the topmost visible layer's that has one."""
    active = viewer.layers.selection.active
    if active is not None and survey_of(active):
        return survey_of(active)
    for layer in reversed(list(viewer.layers)):
        if layer.visible and survey_of(layer):
            return survey_of(layer)
    return None


def seismic_layer(viewer, survey: str | None = None):
    """The seismic layer of ``survey`` (default: the active one), None when there is none."""
    survey = survey or active_survey(viewer)
    for layer in reversed(list(viewer.layers)):
        if layer.ndim == 3 and layer.metadata.get("kind") == "seismic" and (survey is None or survey_of(layer) == survey):
            return layer
    return None


# ---------------------------------------------------------------------- vertical exaggeration
def exaggeration(viewer, survey: str | None = None) -> float:
    """The factor of ``survey`` in ``viewer`` (default: the active survey); 1 until one is set."""
    if viewer is None:
        return 1.0
    survey = survey if survey is not None else active_survey(viewer)
    return _FACTORS.get(viewer, {}).get(survey, 1.0)


def has_exaggeration(viewer, survey: str | None) -> bool:
    return survey in _FACTORS.get(viewer, {})


def ensure_exaggeration(viewer, survey: str | None, shape, spacing) -> float:
    """The factor of ``survey``; the default for a cube of ``shape`` and survey ``spacing`` the first time
    the survey comes to this viewer."""
    if viewer is None:
        return 1.0
    if not has_exaggeration(viewer, survey):
        set_exaggeration(viewer, default_exaggeration(shape, spacing, canvas_aspect(viewer)), survey)
    return exaggeration(viewer, survey)


def set_exaggeration(viewer, value: float, survey: str | None = None) -> float:
    """Stretch the time axis of every 3-D layer of ``survey`` (default: the active one) to ``value``.

    Scale and translate along time change by ``value / current`` for images, labels, points (whose data
    stay in survey units: their scale carries the factor); the slice on screen stays the same. Layers
    added later must be made with :func:`exaggeration` (``world_transform(..., exaggeration=...)``, or
    ``scale=(1, 1, factor)`` for points in survey units)."""
    survey = survey if survey is not None else active_survey(viewer)
    value = float(np.clip(float(value), *EXAGGERATION_RANGE))
    factors = _FACTORS.setdefault(viewer, {})
    first = survey not in factors
    factor = value / factors.get(survey, 1.0)
    factors[survey] = value
    if factor == 1.0 and not first:
        return value
    point = list(viewer.dims.point)
    for layer in viewer.layers:
        if layer.ndim != 3 or survey_of(layer) != survey:
            continue
        scale, translate = np.array(layer.scale, float), np.array(layer.translate, float)
        scale[TIME_AXIS] *= factor
        translate[TIME_AXIS] *= factor
        layer.scale, layer.translate = scale, translate
    if len(point) == 3 and survey == active_survey(viewer):
        viewer.dims.set_point(TIME_AXIS, point[TIME_AXIS] * factor)
    for callback in list(_LISTENERS.get(viewer, ())):
        try:
            callback(survey, value)
        except RuntimeError:  # a closed dock (its Qt object is gone)
            _LISTENERS[viewer].remove(callback)
    return value


def on_exaggeration(viewer, callback) -> None:
    """Call ``callback(survey, value)`` whenever :func:`set_exaggeration` changes a factor of ``viewer``."""
    _LISTENERS.setdefault(viewer, []).append(callback)


def canvas_aspect(viewer) -> float:
    """Width / height of the viewer's canvas (docks make it narrow), within 0.75..2; SECTION_ASPECT when unknown."""
    try:
        height, width = (float(v) for v in viewer.canvas.size)
    except (AttributeError, TypeError, ValueError):
        return SECTION_ASPECT
    if min(width, height) < 100:  # not laid out yet
        return SECTION_ASPECT
    return float(np.clip(width / height, 0.75, 2.0))


def world_to_survey(viewer, world, survey: str | None = None) -> np.ndarray:
    """World coordinates (inline, crossline, time x factor) -> survey units (inline, crossline, ms)."""
    p = np.array(world, float)
    p[..., TIME_AXIS] /= exaggeration(viewer, survey)
    return p


def to_world(viewer, survey_point, survey: str | None = None) -> np.ndarray:
    p = np.array(survey_point, float)
    p[..., TIME_AXIS] *= exaggeration(viewer, survey)
    return p


# ---------------------------------------------------------------------- fitting the view
def fit(viewer, survey: str | None = None) -> float | None:
    """The default exaggeration for the seismic layer of ``survey`` (default: the active one) at the
    canvas' current shape, and the view reset on it; None when no seismic layer is open."""
    layer = seismic_layer(viewer, survey)
    if layer is None:
        reset_view(viewer)
        return None
    survey = survey_of(layer)
    spacing = np.asarray(layer.scale, float) / np.array([1.0, 1.0, exaggeration(viewer, survey)])
    value = set_exaggeration(viewer, default_exaggeration(layer.data.shape, spacing, canvas_aspect(viewer)), survey)
    reset_view(viewer)
    return value


def fit_view(viewer: napari.viewer.Viewer) -> None:
    """Menu command (Layers > Visualize > Fit seismic section); napari hands it the viewer."""
    fit(viewer)


def reset_view(viewer) -> None:
    """napari's Home, remembered as our fit (a canvas resize refits only a view the user has not moved)."""
    viewer.reset_view()
    _FITTED[viewer] = _camera(viewer)


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9; ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _camera(viewer):
    cam = camera(viewer)
    return tuple(np.round(cam.center, 6)), round(float(cam.zoom), 9)


def _on_canvas_resized(viewer) -> None:
    """A dock opened or closed beside the canvas: refit a view that was fitted and not moved since."""
    if _FITTED.get(viewer) == _camera(viewer) and len(viewer.layers):
        reset_view(viewer)


# ---------------------------------------------------------------------- orientation, status bar, hooks
def orient_viewer(viewer, layer) -> None:
    """Put ``viewer`` in the default seismic view for ``layer``: an inline section, time increasing
    downward, stretched vertically so that the section fills most of the canvas (the first time the survey
    comes: an exaggeration the user chose is kept), status bar in survey units, the view fitted."""
    if layer.ndim != 3:
        return
    viewer.dims.order = section_order(layer.data.shape)
    survey = survey_of(layer)
    if not has_exaggeration(viewer, survey):
        spacing = np.asarray(layer.scale, float) / np.array([1.0, 1.0, exaggeration(viewer, survey)])
        set_exaggeration(viewer, default_exaggeration(layer.data.shape, spacing, canvas_aspect(viewer)), survey)
    viewer.dims.axis_labels = layer_axis_labels(layer)
    hook_viewer(viewer)
    slider = viewer.dims.order[0]
    viewer.dims.set_current_step(slider, layer.data.shape[slider] // 2)
    reset_view(viewer)


def orient_when_added(viewer) -> None:
    """Orient ``viewer`` once the next seismic layer lands in it (readers cannot reach the viewer otherwise)."""

    def _on_insert(event):
        layer = event.value
        if layer.metadata.get("kind") == "seismic":
            viewer.layers.events.inserted.disconnect(_on_insert)
            orient_viewer(viewer, layer)

    viewer.layers.events.inserted.connect(_on_insert)


def hook_viewer(viewer) -> None:
    """Once per viewer: the status bar in survey units, the Fit key, and a refit when the canvas resizes."""
    if viewer in _HOOKED:
        return
    _HOOKED.add(viewer)
    viewer.events.status.connect(lambda event=None: _survey_status_bar(viewer))
    try:  # noqa: SIM105
        viewer.bind_key(FIT_KEY, lambda v: fit(v), overwrite=False)
    except (ValueError, TypeError):  # the key is the user's already
        pass
    _watch_canvas(viewer)


def _watch_canvas(viewer) -> None:
    """Refit on canvas resizes (napari's Qt canvas; nothing to watch without one)."""
    try:
        from qtpy.QtCore import QEvent, QObject, QTimer

        native = viewer.window._qt_viewer.canvas.native
    except (AttributeError, ImportError, RuntimeError):
        return

    class _Resized(QObject):
        def __init__(self):
            super().__init__(native)
            self.timer = QTimer(self)
            self.timer.setSingleShot(True)
            self.timer.setInterval(50)  # after the layout settles: one refit per dock opened
            self.timer.timeout.connect(lambda: _on_canvas_resized(viewer))
            native.installEventFilter(self)

        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Resize:
                self.timer.start()
            return False

    native._seisfm_resized = _Resized()


def survey_status(viewer, world=None) -> str:
    """'inline 1064, crossline 1155, time 1200 ms' for a world position (default: the cursor)."""
    if world is None:
        world = viewer.cursor.position
    if len(world) != 3:
        return ""
    il, xl, t = world_to_survey(viewer, world)
    label = str(viewer.dims.axis_labels[TIME_AXIS])
    name, _, unit = label.partition(" (")
    unit = unit.rstrip(")")
    return f"inline {il:.0f}, crossline {xl:.0f}, {name or 'time'} {t:.0f}{' ' + unit if unit else ''}"


def show_survey_coordinates(viewer) -> None:
    hook_viewer(viewer)


def _survey_status_bar(viewer) -> None:
    """napari writes world coordinates in the status bar, and world time is ms x factor: write survey units."""
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
