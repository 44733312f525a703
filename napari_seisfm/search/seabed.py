"""The cubes behind a library's stores and their seabed bands: per (inline, crossline) grid column, the grid rows
from the top down to the first strong reflector (and a margin), picked from the cube's amplitudes when a store is
added to the library (``seabed-<id>.npy`` beside the index) and left out of library searches unless asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SeisfmError
from ..io.output import atomic_output
from ..store.volume import FeatureVolume

# The seabed band of a trace: every sample down to the first one whose amplitude departs from the cube's mean
# by SEABED_STD of its standard deviations (the store's NCS standardisation constants; the first strong
# reflector), then SEABED_MARGIN grid steps below it (the reflection's wavelet).
SEABED_STD = 2.0
SEABED_MARGIN = 1


def cube_path(store, source) -> str | None:
    """The cube file behind ``store`` as an absolute path. Stores record it resolved; one recorded relative
    (an older ``seisfm embed`` given a relative path) is looked for beside the store, then in the working
    directory, and stays as recorded when found in neither. None: the store names no cube file."""
    if not source or source == "array":
        return None
    p = Path(source).expanduser()
    if p.is_absolute():
        return str(p)
    for base in (Path(store).resolve().parent, Path.cwd()):
        if (base / p).exists():
            return str((base / p).resolve())
    return str(p)


def entry_cube(entry: dict) -> str | None:
    """The cube of a library entry: as resolved when it was added, else from its store's geometry summary."""
    return cube_path(entry["path"], entry.get("cube") or (entry.get("geometry") or {}).get("source"))


def seabed_band(fv: FeatureVolume, cube) -> np.ndarray:
    """Grid rows of the seabed band per (inline, crossline) grid column of ``fv``'s grid: the rows down to the
    first sample whose amplitude departs from the cube's mean by ``SEABED_STD`` standard deviations (the first
    strong reflector: the seabed offshore, the first strong event on land) plus ``SEABED_MARGIN`` grid steps,
    median-filtered over 3 x 3 columns (a stray pick does not cut a hole). Reads the cube's grid inlines once.
    A trace with no such sample (dead) has no band."""
    from scipy import ndimage

    norm = fv.normalisation or {}
    mean, std = norm.get("mean"), norm.get("std")
    if not std:  # an imported store: the constants extraction would have used
        from ..extract import estimate_normalisation

        n = estimate_normalisation(cube)
        mean, std = n["mean"], n["std"]
    gi, gx, gt = fv.grid.shape
    o2, s2 = fv.grid.origin[2], fv.grid.stride[2]
    columns = fv.grid.cube_lines(1, slice(0, gx))
    band = np.zeros((gi, gx), np.int16)
    for i, line in enumerate(fv.grid.cube_lines(0, slice(0, gi))):
        traces = np.asarray(cube[int(line)], np.float32).reshape(cube.shape[1], -1)[columns]
        with np.errstate(invalid="ignore"):
            strong = np.abs(traces - np.float32(mean)) >= np.float32(SEABED_STD * std)
        first = strong.argmax(axis=1) + SEABED_MARGIN * s2  # the deepest sample in the band
        rows = np.clip((first - o2) // s2 + 1, 0, gt)
        band[i] = np.where(strong.any(axis=1), rows, 0)
    return ndimage.median_filter(band, size=3, mode="nearest")


def write_band(library: Path, sid: int, fv: FeatureVolume, cube_file: str | None) -> dict:
    """Pick the store's seabed band from its cube and keep it beside the index (``seabed-<id>.npy``); the
    manifest's note of it, with the reason when there is none."""
    from ..io import open_cube

    if not cube_file or not Path(cube_file).exists():
        return {"file": None, "note": f"no seabed band: its cube ({cube_file or 'unknown'}) is not on this machine"}
    try:
        cube = open_cube(cube_file)
    except SeisfmError as exc:
        return {"file": None, "note": f"no seabed band: {exc}"}
    if cube.geometry.fingerprint() != fv.cube_fingerprint:
        return {"file": None, "note": f"no seabed band: {cube_file} is not the cube the store was embedded from"}
    band = seabed_band(fv, cube)
    name = f"seabed-{sid}.npy"
    with atomic_output(library / name) as tmp:
        np.save(tmp, band)
    return {
        "file": name,
        "rows": [int(band.min()), int(band.max())],
        "std": SEABED_STD,
        "margin_steps": SEABED_MARGIN,
        "note": f"seabed band picked from {cube_file}: grid rows 0-{int(band.max()) - 1} at most",
    }


def remove_bands(library: Path, entries) -> None:
    """Remove the seabed band files of library entries (stores taken out)."""
    for e in entries:
        f = (e.get("seabed") or {}).get("file")
        if f:
            (library / f).unlink(missing_ok=True)
