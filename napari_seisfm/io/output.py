"""Writing outputs: every output a later step reads goes through :func:`atomic_output` (built as
``<name>.partial<suffix>`` beside it and renamed into place when complete, so a failed, killed or cancelled
write never leaves a file that looks finished), after :func:`prepare_output` (its folder) and, for big
outputs, :func:`check_free_space`. An OSError while writing is one line naming the output
(:func:`write_failed`), never its temporary file. Feature stores are folders with a ``complete`` flag and
resume chunk by chunk instead (:mod:`napari_seisfm.store.volume`); report files (bench and demo tables and
figures, training curves) are written directly."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import SeisfmError

PARTIAL = ".partial"  # the one marker of an output being written


def partial_path(path) -> Path:
    """Where ``path`` is built: ``<name>.partial<suffix>`` beside it (the suffix kept, so writers that choose
    by it, or append it as ``np.save`` does, write exactly there)."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL + path.suffix)


@contextmanager
def atomic_output(path, *, failed: Callable[[Path, OSError], Exception] | None = None) -> Iterator[Path]:
    """Write ``path`` atomically: the block writes the yielded temporary path (:func:`partial_path`), which is
    renamed onto ``path`` when the block ends without error (a folder at ``path``, as an old zarr output,
    is removed first). On any error the temporary file or folder is removed; an OSError (read-only, disk
    full, permissions) becomes ``failed(path, exc)``, by default :func:`write_failed` naming ``path`` (callers
    with a message of their own, such as a model's "resume" hint, pass one)."""
    path = Path(path)
    tmp = partial_path(path)
    discard(tmp)  # left by a killed run
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise (failed or write_failed)(path, exc) from None
    finally:
        discard(tmp)


def prepare_output(path, *, folder_ok: bool = False) -> Path:
    """``open_cube``'s twin for writers: create missing parent folders (as ``embed`` does), refuse a
    folder where a file goes, and turn an unwritable place into one line instead of an OSError deep
    inside a writer. ``folder_ok`` for outputs that are folders themselves (zarr)."""
    path = Path(path)
    if path.is_dir() and not folder_ok:
        raise SeisfmError(f"{path}: is a folder; give a file name to write")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise SeisfmError(f"{path}: {above} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeisfmError(f"{path}: cannot create its folder {path.parent} ({exc.strerror or exc})") from None
    return path


SPACE_MARGIN = 64 << 10  # bytes beyond an output's predicted size (HDF5 metadata, .npy header, side-cars)


def check_free_space(path, needed: int, what: str = "the output") -> None:
    """Refuse before writing ``path`` when ``needed`` bytes (plus a margin) do not fit on its file system:
    a full disk then costs nothing, and writers that fail badly on one (memory maps, writer threads) are
    not reached. A disk that fills up meanwhile is still each writer's own OSError."""
    path = Path(path)
    try:
        free = shutil.disk_usage(next((p for p in (path.parent, *path.parents) if p.exists()), Path("."))).free
    except OSError:
        return
    if needed + SPACE_MARGIN > free:
        raise SeisfmError(
            f"{path}: not enough free space: {what} needs {format_bytes(needed)}, {format_bytes(free)} free on {path.parent}"
        )


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; absurd sizes in PiB with three digits."""
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def discard(path) -> None:
    """Remove a temporary file or folder left by a failed write, quietly: on a read-only or failing disk the
    removal fails too, and that second error must not replace the first (it named the temporary file)."""
    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def write_failed(path, exc: OSError) -> SeisfmError:
    """The one-line error for an OSError while writing ``path`` (read-only, permissions, disk full)."""
    return SeisfmError(f"{path}: cannot write it ({exc.strerror or ' '.join(str(exc).split())})")
