"""napari reader for seismic cubes (.sgy, .segy, .sgz, .npy): glue over ``open_cube`` and ``display``."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ..cube import SUFFIXES, open_cube
from ..display import SEISMIC_COLORMAP, cube_layer
from ..errors import SeisfmError
from .view import ensure_exaggeration, orient_when_added


def get_reader(path):
    """Open the file now, so a broken one is declined with a clear message instead of a traceback."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES or path.is_dir():
        return None
    if path.suffix.lower() == ".npy" and _ndim(path) == 4:  # a feature array computed elsewhere, not a cube
        from .features_reader import get_feature_array_reader

        return get_feature_array_reader(path)
    try:
        cube = open_cube(path)
    except SeisfmError as exc:
        _notify(str(exc))
        return None
    return partial(_read, cube)


def _ndim(path: Path) -> int | None:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).ndim
    except Exception:  # open_cube says what is wrong with it
        return None


def _read(cube, path=None):
    import napari

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


def _notify(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)
