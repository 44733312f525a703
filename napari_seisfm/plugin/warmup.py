"""Imports the plugin will need soon, made in a background thread when the plugin starts (a dock opens, a
cube is read), so the user's first action does not wait for them: the first Labels layer of a session
imports pandas (1-2 s on a busy 2-core laptop), the first torch-backed job imports torch (4-16 s).

A module being imported in the background and needed on the GUI thread meanwhile is waited for (Python's
import lock), never imported twice; the wait is never longer than importing it there would have been.
"""

from __future__ import annotations

import importlib
import sys
import threading

# what napari imports for the first Labels layer (measured: pandas for its features table, skimage's colour
# conversions, scipy.linalg), what the maps use, and the interpretation core the Click-to-map dock builds on
# when a finished extraction hands it the store (0.2 s of GUI-thread CPU otherwise: docs/desk.md)
FIRST_USE = ("pandas", "skimage.color", "skimage.exposure", "scipy.linalg", "scipy.ndimage", "napari_seisfm.session")
TORCH = ("torch",)  # the torch-backed docks: pretraining, WaveDiffusion, ViT extraction, MAE codecs

_started: set[str] = set()
_lock = threading.Lock()


def warm_up(*modules: str) -> threading.Thread | None:
    """Import ``modules`` (default: FIRST_USE, what the first layers and maps need) in a background thread, once per process."""
    names = [m for m in (modules or FIRST_USE) if m not in sys.modules]
    with _lock:
        names = [m for m in names if m not in _started]
        _started.update(names)
    if not names:
        return None
    thread = threading.Thread(target=_import, args=(names,), name="seisfm-warm-up", daemon=False)
    thread.start()
    return thread


def _import(names) -> None:
    for name in names:
        try:  # noqa: SIM105
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a warm-up that fails costs nothing: the real import will say why
            pass
