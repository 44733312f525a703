"""SEG-Y through segyio: sniffing, geometry, lazy reads and export with the source headers.

segyio does the reading; this module adds what a user needs around it: a one-line error for
every way a file can be broken (checked before segyio sees it, so a corrupt binary header never
becomes a crash or a huge allocation), irregular surveys as a regular grid plus a dead-trace
mask, 2D lines and header-less files as traces, and refusal of pre-stack data.
"""

from __future__ import annotations

import contextlib
import struct
import warnings
from pathlib import Path

import numpy as np

from ..cube import Cube, Geometry, mask_nonfinite_traces
from ..errors import SeisfmError
from ..progress import check, report
from .output import atomic_output, prepare_output

# sample format code -> bytes per sample (the codes segyio reads)
FORMATS = {1: 4, 2: 4, 3: 2, 5: 4, 6: 8, 8: 1, 9: 8, 10: 4, 11: 2, 12: 8, 16: 1}
FORMAT_NAMES = {
    1: "4-byte IBM float",
    2: "4-byte signed int",
    3: "2-byte signed int",
    5: "4-byte IEEE float",
    6: "8-byte IEEE float",
    8: "1-byte signed int",
    9: "8-byte signed int",
    10: "4-byte unsigned int",
    11: "2-byte unsigned int",
    12: "8-byte unsigned int",
    16: "1-byte unsigned int",
}
TEXT, BINARY, TRACE_HEADER = 3200, 400, 240
MAX_SAMPLES = 1_000_000
READ_PIECE_BYTES = 64 * 2**20  # bounded memory for scattered reads


def sniff(path: Path) -> dict:
    """Check the binary header and file size; return endianness, format, samples, trace count."""
    size = path.stat().st_size
    if size == 0:
        raise SeisfmError(f"{path}: empty file (0 bytes)")
    if size < TEXT + BINARY + TRACE_HEADER:
        raise SeisfmError(f"{path}: too small to be SEG-Y ({size} bytes; headers alone take 3840)")
    with open(path, "rb") as f:
        f.seek(TEXT)
        binary = f.read(BINARY)
    found = []
    for endian, mark in (("big", ">"), ("little", "<")):
        fmt = struct.unpack(mark + "h", binary[24:26])[0]
        if fmt in FORMATS:
            ns = struct.unpack(mark + "H", binary[20:22])[0]
            n_ext = struct.unpack(mark + "h", binary[304:306])[0]
            found.append((endian, fmt, ns, n_ext, mark))
    if not found:
        code = struct.unpack(">h", binary[24:26])[0]
        raise SeisfmError(f"{path}: not a readable SEG-Y file: invalid sample format code {code} in the binary header")
    endian, fmt, ns, n_ext, mark = found[0]
    if ns == 0:  # fall back to the first trace header (bytes 115-116)
        with open(path, "rb") as f:
            f.seek(TEXT + BINARY + max(n_ext, 0) * TEXT + 114)
            ns = struct.unpack(mark + "H", f.read(2))[0]
    if not 0 < ns <= MAX_SAMPLES:
        raise SeisfmError(f"{path}: not a readable SEG-Y file: {ns} samples per trace in the headers")
    if n_ext < 0 or n_ext > 100:
        n_ext = 0 if n_ext < 0 else n_ext  # -1 means "variable", unsupported by segyio too
    data = size - TEXT - BINARY - n_ext * TEXT
    trace_bytes = TRACE_HEADER + ns * FORMATS[fmt]
    if data <= 0 or data % trace_bytes:
        n = data / trace_bytes if data > 0 else 0
        raise SeisfmError(
            f"{path}: truncated or inconsistent SEG-Y: {data} bytes of traces is not a whole number of "
            f"{ns}-sample {FORMAT_NAMES[fmt]} traces ({n:.2f})"
        )
    return {
        "endian": endian,
        "format": fmt,
        "format_name": FORMAT_NAMES[fmt],
        "samples": ns,
        "traces": data // trace_bytes,
        "extended_headers": n_ext,
    }


# The unit of the sample axis when the caller does not give one. SEG-Y has no field for it that files set: the
# binary header's measurement system (3255) is about coordinates (metres or feet), and the trace header's depth
# hints are almost never filled in. Time in ms is the safe default.
SAMPLE_UNIT = "ms"


def open_segy(path, *, iline: int = 189, xline: int = 193, sample_unit: str | None = None) -> Cube:
    """Open a post-stack SEG-Y file (3D cube, 2D line, or traces without geometry) lazily."""
    import segyio

    path = Path(path)
    info = sniff(path)
    f = None
    try:  # a regular post-stack file gets segyio's own fast line readers
        f = segyio.open(str(path), "r", iline=iline, xline=xline, endian=info["endian"])
        if len(f.offsets) > 1:
            f.close()
            raise SeisfmError(
                f"{path}: pre-stack data ({len(f.offsets)} offsets per inline/crossline position); napari-seisfm needs a post-stack cube"
            )
    except SeisfmError:
        raise
    except Exception:  # noqa: BLE001
        f = None
    try:
        if f is None:
            f = segyio.open(str(path), "r", iline=iline, xline=xline, endian=info["endian"], ignore_geometry=True)
        f.mmap()
    except Exception as exc:  # noqa: BLE001
        raise SeisfmError(f"{path}: segyio cannot read it: {_one_line(exc)}") from None
    try:
        backend, geometry = _geometry(f, path, iline, xline, info, sample_unit)
    except Exception:
        f.close()
        raise
    info.update(sorting=backend.sorting, source=str(path))
    try:
        return mask_nonfinite_traces(Cube(backend, geometry, path, info))
    except Exception as exc:
        f.close()
        if isinstance(exc, SeisfmError):
            raise
        raise SeisfmError(f"{path}: segyio cannot read its traces: {_one_line(exc)}") from None


def _geometry(f, path, iline, xline, info, sample_unit):
    import segyio

    samples = np.asarray(f.samples, np.float64)
    unit = sample_unit or SAMPLE_UNIT
    ntr = f.tracecount
    il = np.asarray(f.attributes(iline)[:], np.int64)
    xl = np.asarray(f.attributes(xline)[:], np.int64)
    notes = []
    grid = _grid_from_headers(il, xl, ntr)
    if grid is None and np.unique(il).size == 1 and il[0] != 0 and _varies(f, segyio.TraceField.offset):
        raise SeisfmError(
            f"{path}: pre-stack data ({ntr} traces at one inline/crossline position); napari-seisfm needs a post-stack cube"
        )
    if grid is None:
        notes.append("no usable inline/crossline headers: opened as a plain collection of traces")
        warnings.warn(f"{path}: {notes[-1]}", stacklevel=3)
        trace_map = np.arange(ntr).reshape(1, ntr)
        ilines, xlines = np.array([1]), np.arange(1, ntr + 1)
        kind = "traces"
        if _varies(f, segyio.TraceField.CDP_X) or _varies(f, segyio.TraceField.CDP):
            kind = "2d"
    else:
        ilines, xlines, trace_map, duplicates = grid
        if duplicates:
            offsets = np.unique(np.asarray(f.attributes(segyio.TraceField.offset)[:]))
            what = f"{len(offsets)} offsets" if len(offsets) > 1 else f"{duplicates} repeated trace positions"
            raise SeisfmError(
                f"{path}: pre-stack data ({what} per inline/crossline position); napari-seisfm needs a post-stack cube"
            )
        kind = "2d" if 1 in trace_map.shape else "3d"
    dead = trace_map < 0
    if dead.any():
        notes.append(f"{int(dead.sum())} missing traces on the {trace_map.shape[0]}x{trace_map.shape[1]} grid (dead-trace mask)")
    geometry = Geometry(
        ilines=ilines,
        xlines=xlines,
        samples=samples,
        sample_unit=unit,
        kind=kind,
        dead=dead if dead.any() else None,
        source=str(path),
        notes=tuple(notes),
    )
    # segyio's own line readers only where its idea of the grid is exactly ours: a file whose line
    # headers are damaged may still look regular to segyio (it samples a few headers), and its
    # "inline 1" is then not a section of the traces we show
    lines = grid is not None and not f.unstructured and _same_lines(f, ilines, xlines)
    return SegyBackend(f, trace_map, len(samples), segyio_lines=lines), geometry


def _same_lines(f, ilines, xlines) -> bool:
    try:
        return np.array_equal(np.asarray(f.ilines), ilines) and np.array_equal(np.asarray(f.xlines), xlines)
    except Exception:  # noqa: BLE001
        return False


def _grid_from_headers(il, xl, ntr):
    """Regular grid from per-trace line numbers, or None when the headers carry no geometry."""
    if ntr == 0:
        return None
    if np.unique(il).size == 1 and np.unique(xl).size == 1 and ntr > 1:
        return None
    ilines, xlines = _axis(il), _axis(xl)
    if ilines is None or xlines is None or len(ilines) * len(xlines) > 4 * ntr + 16:
        return None  # numbers too sparse to be a survey grid (garbage or empty headers)
    trace_map = np.full((len(ilines), len(xlines)), -1, np.int64)
    ii = np.searchsorted(ilines, il)
    jj = np.searchsorted(xlines, xl)
    flat = ii * len(xlines) + jj
    duplicates = ntr - np.unique(flat).size
    trace_map.reshape(-1)[flat[::-1]] = np.arange(ntr)[::-1]  # first trace wins on duplicates
    return ilines, xlines, trace_map, duplicates


def _axis(values):
    u = np.unique(values)
    if u.size == 1:
        return u
    step = int(np.gcd.reduce(np.diff(u)))
    if step <= 0 or (u[-1] - u[0]) // step + 1 > 10_000_000:
        return None
    return np.arange(u[0], u[-1] + step, step)


def _varies(f, field) -> bool:
    v = np.asarray(f.attributes(field)[:])
    return np.unique(v).size > 1


class SegyBackend:
    """Reads blocks by gathering traces; whole inlines, crosslines and time slices use segyio's fast paths."""

    def __init__(self, f, trace_map: np.ndarray, n_samples: int, *, segyio_lines: bool = False):
        self.f = f
        self.trace_map = trace_map
        self.shape = (*trace_map.shape, n_samples)
        self.sorting = self._sorting()
        # segyio's iline/xline readers agree with trace_map (checked by _geometry); else gather traces
        self.segyio_lines = bool(segyio_lines) and self.sorting is not None

    def _sorting(self) -> str | None:
        tm = self.trace_map
        if (tm < 0).any():
            return None
        if np.array_equal(tm.ravel(), np.arange(tm.size)):
            return "inline"
        if np.array_equal(tm.T.ravel(), np.arange(tm.size)):
            return "crossline"
        return None

    def plane(self, axis: int, index: int) -> np.ndarray:
        """A whole inline, crossline or time slice."""
        if axis < 2 and self.segyio_lines:
            number = (self.f.ilines, self.f.xlines)[axis][index]
            out = np.asarray((self.f.iline, self.f.xline)[axis][number], np.float32)
            if out.shape == (self.shape[1 - axis], self.shape[2]):
                return out
        if axis == 2:
            if self.sorting is not None:
                # segyio's depth_slice walks every trace in C, reading one sample of each (in file order)
                flat = np.asarray(self.f.depth_slice[index], np.float32).ravel()
                if flat.size == self.trace_map.size:
                    return (
                        flat.reshape(self.trace_map.shape) if self.sorting == "inline" else flat.reshape(self.trace_map.T.shape).T
                    )
            return self.read(slice(0, self.shape[0]), slice(0, self.shape[1]), slice(index, index + 1))[:, :, 0]
        sl = [slice(None), slice(None)]
        sl[axis] = slice(index, index + 1)
        return self.read(*sl, slice(0, self.shape[2]))[(0,) if axis == 0 else (slice(None), 0)]

    def read(self, il: slice, xl: slice, t: slice) -> np.ndarray:
        tm = self.trace_map[il, xl]
        out = np.zeros((*tm.shape, t.stop - t.start), np.float32)
        flat_out = out.reshape(-1, out.shape[-1])
        idx = tm.ravel()
        live = np.flatnonzero(idx >= 0)
        if live.size == 0:
            return out
        order = live[np.argsort(idx[live], kind="stable")]
        traces = idx[order]
        # contiguous runs of trace numbers are read in one call, in bounded pieces
        breaks = np.flatnonzero(np.diff(traces) != 1) + 1
        per_piece = max(1, READ_PIECE_BYTES // (4 * self.shape[2]))
        raw = self.f.trace.raw
        for run_pos in np.split(np.arange(traces.size), breaks):
            for a in range(0, run_pos.size, per_piece):
                pos = run_pos[a : a + per_piece]
                first, last = int(traces[pos[0]]), int(traces[pos[-1]])
                block = raw[first : last + 1] if last > first else raw[first][None]
                flat_out[order[pos]] = np.asarray(block)[:, t]
        return out

    def close(self):
        self.f.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


# ---------------------------------------------------------------------------- writing
def write_like(path, data: np.ndarray, cube: Cube, *, sample_format: int | None = None, progress=None, cancel=None) -> Path:
    """Write ``data`` (on ``cube``'s grid) as SEG-Y with the source file's text, binary and trace headers.

    The source sample format is kept when the data survive it exactly (float formats, or
    integers in range); otherwise IEEE float (5) is used, so a similarity map in [-1, 1] is never
    squeezed into 2-byte integers. Sources that are not SEG-Y get fresh headers (:func:`write_segy`).
    ``progress(done, total)`` counts traces; ``cancel`` stops the write and removes the partial file.
    """
    import segyio

    path = Path(path)
    data = np.asarray(data)
    if data.shape != cube.shape:
        raise SeisfmError(f"{path}: data shape {data.shape} does not match the cube grid {cube.shape}")
    backend = getattr(cube, "_backend", None)
    if not isinstance(backend, SegyBackend):
        return write_segy(path, data, cube.geometry)
    src = backend.f
    fmt = sample_format or _format_for(data, int(cube.info.get("format", 5)))
    spec = segyio.spec()
    spec.format = fmt
    spec.samples = src.samples
    spec.tracecount = src.tracecount
    spec.endian = cube.info.get("endian", "big")
    spec.ext_headers = max(int(cube.info.get("extended_headers", 0)), 0)
    path = prepare_output(path)
    trace_map = backend.trace_map
    pos = np.argwhere(trace_map >= 0)
    tr = trace_map[trace_map >= 0]
    values = data.astype(np.float32)
    with atomic_output(path) as tmp, _segy_errors(path), segyio.create(str(tmp), spec) as dst:
        dst.text[0] = src.text[0]
        for i in range(1, spec.ext_headers + 1):
            dst.text[i] = src.text[i]
        dst.bin = src.bin
        dst.bin.update({3225: fmt})
        dst.header = src.header
        for n, ((i, j), t) in enumerate(zip(pos, tr)):
            if n % 1024 == 0:
                check(cancel, f"export of {path.name} stopped; nothing was written")
                report(progress, n, len(tr))
            dst.trace[int(t)] = values[i, j]
    return path


@contextlib.contextmanager
def _segy_errors(path):
    """segyio's own exceptions as one line naming ``path``; ours (cancel) and OSErrors (read-only, disk full:
    :func:`~napari_seisfm.io.output.atomic_output` names the output) pass through."""
    try:
        yield
    except (SeisfmError, OSError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise SeisfmError(f"{path}: could not write SEG-Y: {_one_line(exc)}") from None


def _format_for(data: np.ndarray, fmt: int) -> int:
    if fmt in (1, 5):
        return fmt
    if fmt in (2, 3, 8) and np.all(np.isfinite(data)) and np.array_equal(data, np.round(data)):
        lim = {2: 2**31 - 1, 3: 2**15 - 1, 8: 127}[fmt]
        if np.abs(data).max(initial=0) <= lim:
            return fmt
    return 5


def write_segy(path, data: np.ndarray, geometry: Geometry, *, text: str | None = None) -> Path:
    """A fresh, inline-sorted IEEE-float SEG-Y file for data without a SEG-Y source."""
    import segyio

    path = Path(path)
    data = np.asarray(data, np.float32)
    if data.shape != geometry.shape:
        raise SeisfmError(f"{path}: data shape {data.shape} does not match the geometry {geometry.shape}")
    ni, nx, nt = data.shape
    spec = segyio.spec()
    spec.format = 5
    spec.sorting = segyio.TraceSortingFormat.INLINE_SORTING
    spec.iline, spec.xline = 189, 193
    spec.ilines = [int(v) for v in geometry.ilines]
    spec.xlines = [int(v) for v in geometry.xlines]
    spec.samples = [float(v) for v in geometry.samples]
    dt = geometry.spacing[2]
    dt_us = int(round(dt * 1000)) if geometry.sample_unit in ("ms", "samples") else int(round(dt))
    path = prepare_output(path)
    with atomic_output(path) as tmp, _segy_errors(path), segyio.create(str(tmp), spec) as f:
        header = text or f"napari-seisfm export of {geometry.source or 'an array'}; {ni}x{nx}x{nt}, {geometry.sample_unit}"
        f.text[0] = segyio.tools.wrap(header)
        f.bin.update({3217: dt_us, 3221: nt, 3225: 5, 3255: 1 if geometry.sample_unit == "m" else 0})
        delay = int(round(float(geometry.samples[0])))
        for i, il in enumerate(geometry.ilines):
            for j, xl in enumerate(geometry.xlines):
                t = i * nx + j
                f.header[t] = {189: int(il), 193: int(xl), 1: t + 1, 115: nt, 117: dt_us, 109: delay}
            f.iline[int(il)] = data[i]
    return path
