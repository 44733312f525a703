"""How the napari readers refuse a file of ours: one message, ours, and no layer (npe2's null-layer answer),
so napari adds no generic "no reader" error of its own. Shared by ``reader`` and ``features_reader``."""

from __future__ import annotations

NOTHING = [(None,)]  # npe2: the file was ours and opens no layer (no second, generic error from napari)


def notify(message: str) -> None:
    """Tell the user (a napari warning notification)."""
    from napari.utils.notifications import show_warning

    show_warning(message)


def refused(message: str):
    """A reader that shows ``message`` as the only word on the file and opens nothing."""

    def refuse(_path=None, **_):
        notify(message)
        return NOTHING

    return refuse
