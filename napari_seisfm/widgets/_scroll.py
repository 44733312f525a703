"""Docks that fit a laptop screen: the content scrolls instead of forcing the window taller."""

from __future__ import annotations

from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget


def scrolling_layout(widget: QWidget) -> QVBoxLayout:
    """Give ``widget`` a vertical scroll area and return the layout to fill inside it."""
    inner = QWidget()
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(inner)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return QVBoxLayout(inner)
