"""How every dock widget reports: a notification with one line, never a traceback dialog."""

from __future__ import annotations

from ...errors import SeisfmCancelled, SeisfmError


def show_error(message: str) -> None:
    from napari.utils.notifications import show_error as _show

    _show(message)


def show_info(message: str) -> None:
    from napari.utils.notifications import show_info as _show

    _show(message)


def report(exc: BaseException, what: str) -> str:
    """Show a worker's exception: cancellation as info, user errors as is, bugs with their type."""
    if isinstance(exc, SeisfmCancelled):
        show_info(str(exc))
    elif isinstance(exc, SeisfmError):
        show_error(str(exc))
    else:
        show_error(f"{what} failed: {exc.__class__.__name__}: {exc}")
    return str(exc)
