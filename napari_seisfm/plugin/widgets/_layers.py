"""What the docks need to know about layers, in one place: which layers are cubes, the cube behind a
layer (its file, else its data with its geometry), and a path field with a browse button."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QWidget

from ...errors import SeisfmError


def is_cube_layer(layer) -> bool:
    """A seismic layer our reader, the sample data or a dock made (it carries a cube geometry)."""
    md = layer.metadata
    if md.get("kind") == "features":
        return False
    return md.get("kind") == "seismic" or (isinstance(md.get("geometry"), dict) and "fingerprint" in md["geometry"])


def cube_behind(layer):
    """The cube behind a layer: its file path when it has one, else a Cube of its in-memory data with its
    geometry (a geometry that does not fit the data is dropped)."""
    from ...cube import Cube, geometry_from_summary

    path = layer.metadata.get("path")
    if path:
        if not Path(path).exists():
            raise SeisfmError(f"{path}: the cube file of layer {layer.name!r} is gone")
        return str(path)
    data = layer.data
    if getattr(data, "ndim", 0) != 3:
        raise SeisfmError(f"layer {layer.name!r}: a cube must be 3-D, got shape {np.shape(data)}")
    geometry = None
    summary = layer.metadata.get("geometry")
    if isinstance(summary, dict) and summary.get("shape"):
        geometry = geometry_from_summary(summary)
        if geometry.shape != tuple(data.shape):
            geometry = None
    return Cube.from_array(data, geometry)


def fingerprint_of(layer) -> str | None:
    return (layer.metadata.get("geometry") or {}).get("fingerprint")


def with_browse(edit: QWidget, slot, tip: str = "choose a file or folder") -> QWidget:
    """``edit`` with a small "..." button beside it that calls ``slot``."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit)
    button = QPushButton("...")
    button.setMaximumWidth(30)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    row.addWidget(button)
    return box
