"""How seismic is shown: the conventions of DESIGN.md as plain data, shared by every layer we make.

No napari import here: these functions build ``(data, kwargs, layer_type)`` tuples and viewer
settings that the reader, the sample data, the widgets and the CLI screenshots all use.
"""

from __future__ import annotations

import numpy as np

from .cube import Cube, Geometry

SEISMIC_COLORS = [[0.75, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.75, 1.0]]  # red-white-blue
IN_MEMORY_BYTES = 256 * 2**20  # smaller cubes are read at once so scrolling never waits on disk


def axis_labels(geometry: Geometry) -> tuple[str, str, str]:
    return ("inline", "crossline", geometry.domain)


def world_transform(geometry: Geometry, stride=(1, 1, 1), origin=(0, 0, 0)) -> dict:
    """``scale``/``translate`` in survey units for data on the cube grid or on a strided grid of it."""
    spacing = np.asarray(geometry.spacing)
    return {
        "scale": tuple(float(v) for v in spacing * np.asarray(stride)),
        "translate": tuple(float(v) for v in np.asarray(geometry.origin) + spacing * np.asarray(origin)),
        "axis_labels": axis_labels(geometry),
    }


def cube_layer(cube: Cube, *, name: str | None = None, colormap: str = "gray", in_memory: bool | None = None):
    """Image layer data for a cube: lazy for big files, symmetric robust contrast, survey units."""
    limit = cube.robust_amplitude(99.0) or 1.0
    if in_memory is None:
        in_memory = cube.nbytes <= IN_MEMORY_BYTES
    data = cube.read() if in_memory else cube
    kwargs = {
        "name": name or (cube.path.stem if cube.path else "seismic"),
        "contrast_limits": (-limit, limit),
        "colormap": seismic_colormap() if colormap == "seismic" else colormap,
        "metadata": {"kind": "seismic", "path": str(cube.path) if cube.path else None, "geometry": cube.geometry.summary()},
        **world_transform(cube.geometry),
    }
    return data, kwargs, "image"


def seismic_colormap():
    """napari colormap (imported lazily so the core stays Qt-free), registered so that it is in every
    layer's colormap list, not only reachable from Python."""
    from napari.utils.colormaps import Colormap, ensure_colormap

    return ensure_colormap(Colormap(SEISMIC_COLORS, name="seismic red-white-blue"))


def section_order(shape) -> tuple[int, int, int]:
    """Dims order that shows a vertical section with time downward (napari draws the last two as rows, columns).

    Inline sections for cubes; for a 2D line the axis with one position becomes the slider.
    """
    slider = 1 if shape[1] == 1 and shape[0] > 1 else 0
    other = 1 - slider
    return (slider, 2, other)


def orient_viewer(viewer, layer) -> None:
    """Put ``viewer`` in the default seismic view for ``layer``: an inline section, time increasing downward."""
    if layer.ndim != 3:
        return
    viewer.dims.order = section_order(layer.data.shape)
    labels = layer.metadata.get("geometry", {})
    viewer.dims.axis_labels = ("inline", "crossline", labels.get("domain", "time"))
    slider = viewer.dims.order[0]
    viewer.dims.set_current_step(slider, layer.data.shape[slider] // 2)
    viewer.reset_view()


def orient_when_added(viewer) -> None:
    """Orient ``viewer`` once the next seismic layer lands in it (readers cannot reach the viewer otherwise)."""

    def _on_insert(event):
        layer = event.value
        if layer.metadata.get("kind") == "seismic":
            viewer.layers.events.inserted.disconnect(_on_insert)
            orient_viewer(viewer, layer)

    viewer.layers.events.inserted.connect(_on_insert)
