"""Progress and cancel for long work, the same for the CLI, the docks and Dask tasks.

A long function takes ``progress(done, total, *detail)`` and ``cancel`` (a ``threading.Event`` or a
callable returning True to stop) and raises :class:`~napari_seisfm.errors.SeisfmCancelled` when asked
to stop, leaving its output resumable. Work that happens deep inside a call (the stages of one
embedder call, the batches of a ViT) reports through a *step hook*: the caller installs one for the
current thread with :func:`steps`, the callee calls :func:`step` after each unit of its work. The
hook is per thread, so chunks embedded in parallel threads each report to their own caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

from .errors import SeisfmCancelled

_local = threading.local()


def cancelled(cancel) -> bool:
    """Whether ``cancel`` (None, an Event, or a callable) asks to stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def check(cancel, message: str) -> None:
    """Raise ``SeisfmCancelled(message)`` when ``cancel`` asks to stop."""
    if cancelled(cancel):
        raise SeisfmCancelled(message)


def report(progress, done, total, *detail) -> None:
    if progress is not None:
        progress(done, total, *detail)


@contextmanager
def steps(hook: Callable[[int, int], None] | None):
    """Install ``hook(done, total)`` for the current thread while the block runs; :func:`step` calls it
    (with ``None, None`` at a point that only checks for cancel). The hook may raise ``SeisfmCancelled``
    to stop the work there."""
    saved = getattr(_local, "hook", None)
    _local.hook = hook
    try:
        yield
    finally:
        _local.hook = saved


def step(done: int | None = None, total: int | None = None) -> None:
    """Unit ``done`` of ``total`` of the current call is finished (a stage, a batch): report it to the
    current thread's hook, which may stop the call by raising ``SeisfmCancelled``. Without arguments, only
    a point where the call may be stopped (inside a long stage)."""
    hook = getattr(_local, "hook", None)
    if hook is not None:
        hook(done, total)


class Rate:
    """Seconds left, from the pace so far: ``Rate().eta(fraction)`` is None until the pace is known."""

    def __init__(self, clock=None):
        import time

        self._clock = clock or time.perf_counter
        self.t0 = self._clock()
        self.f0 = None

    def eta(self, fraction: float) -> float | None:
        now = self._clock()
        if self.f0 is None:  # the first report starts the clock: set-up before it (imports, opening) is not the pace
            self.f0, self.t0 = float(fraction), now
            return None
        gained = float(fraction) - self.f0
        if gained <= 0 or now - self.t0 < 1.0:
            return None
        return max(0.0, (now - self.t0) / gained * (1.0 - float(fraction)))


def format_eta(seconds: float | None) -> str:
    """'about 3 min left' / 'about 40 s left' / '' (unknown)."""
    if seconds is None:
        return ""
    if seconds >= 90:
        return f"about {seconds / 60:.0f} min left"
    return f"about {max(seconds, 1):.0f} s left"
