"""napari reader for seismic cubes (.sgy, .segy, .sgz, .npy): glue over ``open_cube`` and ``display``.

A file we cannot read gets one message, ours: the reader claims it and opens nothing (npe2's "no layers"
answer), so napari adds no generic "no reader" error of its own. A ``.npy`` that is not 3-D or 4-D is not
ours to judge: it is declined silently, for napari's own reader. What the file opening has to say (a file
with no geometry headers opening as a line of traces) is a notification, not only a line on stderr.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import numpy as np

from ..display import SEISMIC_COLORMAP, cube_layer
from ..errors import SeisfmError
from ..io import SUFFIXES, open_cube
from . import refusal
from .refusal import refused
from .view import ensure_exaggeration, orient_when_added


def get_reader(path):
    """Open the file now, so a broken one is refused with one clear message instead of a traceback."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES or path.is_dir():
        return None
    if path.suffix.lower() == ".npy":
        ndim = _ndim(path)
        if ndim == 4:  # a feature array computed elsewhere, not a cube
            from .features_reader import get_feature_array_reader

            return get_feature_array_reader(path)
        if ndim is not None and ndim != 3:
            return None  # not a cube: napari's own reader shows it
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            cube = open_cube(path)
        except SeisfmError as exc:
            return refused(str(exc))
    for w in said:
        if issubclass(w.category, UserWarning):
            refusal.notify(str(w.message))
    return partial(_read, cube)


def _ndim(path: Path) -> int | None:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).ndim
    except Exception:  # open_cube says what is wrong with it  # noqa: BLE001
        return None


def _read(cube, path=None):
    import napari

    from .warmup import warm_up

    warm_up()  # the first overlay and Labels layer will need these
    viewer = napari.current_viewer()
    if viewer is not None:
        orient_when_added(viewer)
    _register_seismic_colormap()
    # in its survey's vertical exaggeration (a survey new to the viewer gets the default that fills the canvas)
    factor = ensure_exaggeration(viewer, cube.geometry.fingerprint(), cube.shape, cube.geometry.spacing)
    return [cube_layer(cube, exaggeration=factor)]


def _register_seismic_colormap() -> None:
    """Red-white-blue joins every layer's colormap list (not only reachable from Python)."""
    from napari.utils.colormaps import ensure_colormap

    ensure_colormap(dict(SEISMIC_COLORMAP))
