"""Cube: a lazy, geometry-aware seismic volume, indexed ``(inline, crossline, sample)``.

A Cube reads only what is asked for: an inline, a crossline, a time slice or a sub-volume. It
looks like a read-only numpy array to napari (``shape``, ``dtype``, ``ndim``, ``__getitem__``),
so a 100 GB file opens at once and napari pulls slices as the user scrolls. The file formats
live in ``napari_seisfm.io``; this module knows only geometry and indexing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import SeisfmError

AXES = ("inline", "crossline", "sample")


@dataclass(frozen=True, eq=False)
class Geometry:
    """Survey numbering of a cube's axes. ``dead`` marks grid positions with no trace."""

    ilines: np.ndarray
    xlines: np.ndarray
    samples: np.ndarray
    sample_unit: str = "ms"  # "ms" | "m" | "ft" | "samples"
    kind: str = "3d"  # "3d" | "2d" (one trace axis) | "traces" (no usable geometry)
    dead: np.ndarray | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def regular(
        cls, shape, *, first_inline=1, first_crossline=1, sample_interval=4.0, first_sample=0.0, sample_unit="ms", **kw
    ) -> Geometry:
        ni, nx, nt = shape
        return cls(
            ilines=np.arange(first_inline, first_inline + ni),
            xlines=np.arange(first_crossline, first_crossline + nx),
            samples=first_sample + sample_interval * np.arange(nt, dtype=np.float64),
            sample_unit=sample_unit,
            kind=kw.pop("kind", "2d" if 1 in shape[:2] else "3d"),
            **kw,
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.ilines), len(self.xlines), len(self.samples))

    @property
    def domain(self) -> str:
        """Name of the sample axis for display: time or depth."""
        return "time" if self.sample_unit in ("ms", "s") else ("depth" if self.sample_unit in ("m", "ft") else "sample")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Step between neighbours along each axis in survey units (line numbers, ms or m)."""
        return tuple(_step(a) for a in (self.ilines, self.xlines, self.samples))

    @property
    def origin(self) -> tuple[float, float, float]:
        return tuple(float(a[0]) for a in (self.ilines, self.xlines, self.samples))

    @property
    def n_dead(self) -> int:
        return 0 if self.dead is None else int(self.dead.sum())

    def fingerprint(self) -> str:
        """Identity of the grid (not the amplitudes): feature volumes must match it."""
        h = hashlib.sha256()
        for a in (self.ilines, self.xlines):
            h.update(np.ascontiguousarray(a, np.int64).tobytes())
        h.update(np.ascontiguousarray(self.samples, np.float64).round(6).tobytes())
        h.update(self.sample_unit.encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """JSON-able description, stored with feature volumes and printed by ``seisfm info``."""

        def axis(a):
            return [_num(a[0]), _num(a[-1]), _num(_step(a))]

        return {
            "source": self.source,
            "kind": self.kind,
            "shape": list(self.shape),
            "ilines": axis(self.ilines),
            "xlines": axis(self.xlines),
            "samples": axis(self.samples),
            "sample_unit": self.sample_unit,
            "domain": self.domain,
            "dead_traces": self.n_dead,
            "fingerprint": self.fingerprint(),
            "notes": list(self.notes),
        }

    def to_index(self, point) -> np.ndarray:
        """Fractional cube index ``(i, x, s)`` of ``(inline, crossline, time)`` in survey units.

        The one survey -> index conversion (clicks, CLI points, matches): linear along each axis from its
        first value and step. A point up to half a step outside the first/last line still snaps onto it;
        farther out is a SeisfmError naming the axis and its range."""
        point = tuple(float(v) for v in point)
        out = []
        for axis, (values, v) in enumerate(zip((self.ilines, self.xlines, self.samples), point)):
            first, n = float(values[0]), len(values) - 1
            idx = (v - first) / _step(values)
            if not (np.isfinite(idx) and -0.5 <= idx <= n + 0.5):
                lo, hi = sorted((first, float(values[-1])))
                unit = f" {self.sample_unit}" if axis == 2 else ""
                raise SeisfmError(
                    f"point ({', '.join(f'{c:g}' for c in point)}) is outside the volume: "
                    f"{AXES[axis].replace('sample', self.domain)} {v:g} not in {lo:g}..{hi:g}{unit}"
                )
            out.append(min(max(idx, 0.0), float(n)))
        return np.asarray(out)

    def to_survey(self, index) -> tuple[float, float, float]:
        """Survey coordinates of a (fractional) cube index; the inverse of :meth:`to_index`."""
        return tuple(float(a[0]) + _step(a) * float(i) for a, i in zip((self.ilines, self.xlines, self.samples), index))

    def index(self, axis: int, value: float) -> int:
        """Index of an inline/crossline number or sample value; a clear error when off the grid."""
        values = (self.ilines, self.xlines, self.samples)[axis]
        i = int(np.argmin(np.abs(values - value)))
        tol = abs(_step(values)) / 2 if len(values) > 1 else 0.5
        if abs(values[i] - value) > tol + 1e-9:
            raise SeisfmError(
                f"{AXES[axis]} {value:g} is outside {self.source or 'the cube'} ({_num(values[0])}..{_num(values[-1])})"
            )
        return i


def _step(a: np.ndarray) -> float:
    if len(a) < 2:
        return 1.0
    d = np.diff(np.asarray(a, float))
    return float(np.median(d))


def _num(x):
    x = float(x)
    return int(x) if x.is_integer() else round(x, 6)


class Backend(Protocol):
    """What a file format provides: contiguous block reads plus optional fast planes."""

    shape: tuple[int, int, int]

    def read(self, il: slice, xl: slice, t: slice) -> np.ndarray: ...

    def close(self) -> None: ...


class ArrayBackend:
    """An in-memory or memory-mapped array (``.npy``, synthetic data, test cubes)."""

    def __init__(self, array):
        if array.ndim != 3:
            raise SeisfmError(f"a cube must be 3-D (inline, crossline, sample), got shape {array.shape}")
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)

    def read(self, il, xl, t):
        return np.asarray(self.array[il, xl, t], dtype=np.float32)

    def close(self):
        pass


class Cube:
    """A seismic volume that reads lazily; see the module docstring."""

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, backend: Backend, geometry: Geometry, path: str | os.PathLike | None = None, info: dict | None = None):
        if tuple(backend.shape) != geometry.shape:
            raise SeisfmError(f"{path or 'cube'}: data shape {backend.shape} does not match geometry {geometry.shape}")
        self._backend = backend
        self.geometry = geometry
        self.path = Path(path) if path else None
        self.info = dict(info or {})  # format details for `seisfm info` (sample format, endianness, ...)

    @classmethod
    def from_array(cls, array, geometry: Geometry | None = None) -> Cube:
        array = np.asarray(array) if not hasattr(array, "shape") else array
        geometry = geometry or Geometry.regular(array.shape, source="array")
        return cls(ArrayBackend(array), geometry)

    # ------------------------------------------------------------------ array protocol
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        key = _normalise_key(key, self.shape)
        plane = getattr(self._backend, "plane", None)
        ints = [i for i, k in enumerate(key) if isinstance(k, int)]
        if plane is not None and len(ints) == 1:
            axis = ints[0]
            others = [k for i, k in enumerate(key) if i != axis]
            if all(k == slice(0, self.shape[i], 1) for i, k in zip([i for i in range(3) if i != axis], others)):
                return plane(axis, key[axis])
        bounds = [slice(k, k + 1) if isinstance(k, int) else slice(k.start, k.stop) for k in key]
        self._check_fits(int(np.prod([b.stop - b.start for b in bounds])) * self.dtype.itemsize)
        if any(b.stop <= b.start for b in bounds):
            block = np.zeros([max(0, b.stop - b.start) for b in bounds], np.float32)
        else:
            block = self._backend.read(*bounds)
        post = tuple(0 if isinstance(k, int) else slice(None, None, k.step) for k in key)
        return np.ascontiguousarray(block[post], dtype=np.float32)

    def __array__(self, dtype=None, copy=None):
        data = self.read()
        return data if dtype is None else data.astype(dtype)

    # ------------------------------------------------------------------ survey access
    def inline(self, number) -> np.ndarray:
        """One inline by its number: ``(crossline, sample)``."""
        return self[self.geometry.index(0, number)]

    def crossline(self, number) -> np.ndarray:
        return self[:, self.geometry.index(1, number)]

    def time_slice(self, value) -> np.ndarray:
        """One horizontal slice at a sample value (ms or m): ``(inline, crossline)``."""
        return self[:, :, self.geometry.index(2, value)]

    def subvolume(self, il=None, xl=None, t=None) -> np.ndarray:
        """Inclusive ranges in survey units, e.g. ``il=(111, 120), t=(100, 200)``; None = all."""
        key = []
        for axis, rng in enumerate((il, xl, t)):
            if rng is None:
                key.append(slice(None))
            else:
                a, b = sorted(self.geometry.index(axis, v) for v in rng)
                key.append(slice(a, b + 1))
        return self[tuple(key)]

    def read(self) -> np.ndarray:
        """The whole cube in memory; refuses when it would not fit comfortably."""
        return self[:, :, :]

    def _check_fits(self, nbytes: int, fraction: float = 0.5) -> None:
        if nbytes < 2**26:  # small reads never ask the OS
            return
        free = available_memory()
        if free and nbytes > fraction * free:
            raise SeisfmError(
                f"{self.path or 'cube'}: loading {nbytes / 2**30:.1f} GiB would exceed "
                f"{fraction:.0%} of the {free / 2**30:.1f} GiB of free memory; read sub-volumes instead"
            )

    def robust_amplitude(self, percentile: float = 99.0, max_traces: int = 20000) -> float:
        """|amplitude| percentile from a sample of inlines: symmetric contrast limits, standardisation."""
        ni = self.shape[0]
        n_lines = int(np.clip(max_traces // max(self.shape[1], 1), 1, ni))
        picks = np.unique(np.linspace(0, ni - 1, n_lines).round().astype(int))
        values = np.concatenate([np.abs(self[int(i)]).ravel() for i in picks])
        values = values[np.isfinite(values)]
        if self.geometry.dead is not None:
            values = values[values > 0] if (values > 0).any() else values
        return float(np.percentile(values, percentile)) if values.size else 1.0

    def close(self) -> None:
        self._backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"Cube({self.path or 'array'}, shape={self.shape}, {self.geometry.kind}, {self.geometry.sample_unit})"


def _normalise_key(key, shape) -> tuple:
    """numpy basic indexing -> three entries, each an int or a slice with explicit bounds."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1 :]
    if len(key) > 3:
        raise IndexError(f"too many indices for a cube: {len(key)}")
    key = key + (slice(None),) * (3 - len(key))
    out = []
    for k, n in zip(key, shape):
        if isinstance(k, (int, np.integer)):
            k = int(k)
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for axis with size {n}")
            out.append(k % n)
        elif isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step < 0:  # read forward, reverse after
                raise IndexError("negative steps are not supported on a Cube; read, then reverse")
            out.append(slice(start, max(start, stop), step))
        else:
            raise IndexError(f"a Cube supports ints and slices, not {type(k).__name__}")
    return tuple(out)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo; psutil elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001
        return None


SCAN_ALL_BYTES = 2**28  # cubes up to this size (the in-memory scrolling limit) are scanned whole


def mask_nonfinite_traces(cube: Cube) -> Cube:
    """The cube with traces holding NaN/inf added to its dead-trace mask (every reader calls this).

    A NaN-filled trace is no data, like a missing one: it must not count as live, be embedded as
    valid or come back as a search match. Cubes up to ``SCAN_ALL_BYTES`` are scanned whole (any
    non-finite sample); larger ones at their first, middle and last sample, which finds NaN-filled
    traces without reading the whole file at open.
    """
    ni, nx, nt = cube.shape
    if 0 in (ni, nx, nt):
        return cube
    bad = np.zeros((ni, nx), bool)
    backend = cube._backend
    if cube.nbytes <= SCAN_ALL_BYTES:
        step = max(1, (2**24) // max(nx * nt * 4, 1))  # ~16 MiB per read
        for a in range(0, ni, step):
            block = backend.read(slice(a, min(ni, a + step)), slice(0, nx), slice(0, nt))
            bad[a : a + block.shape[0]] = ~np.isfinite(block).all(axis=2)
    else:
        for k in sorted({0, nt // 2, nt - 1}):
            bad |= ~np.isfinite(np.asarray(cube[:, :, k]))
    if not bad.any():
        return cube
    g = cube.geometry
    dead = bad if g.dead is None else (bad | np.asarray(g.dead, bool))
    n = int((bad & ~np.asarray(g.dead, bool)).sum()) if g.dead is not None else int(bad.sum())
    notes = g.notes + (f"{n} traces with NaN/inf samples (dead-trace mask)",)
    geometry = dataclasses.replace(g, dead=dead, notes=notes)
    return Cube(backend, geometry, cube.path, cube.info)


def geometry_from_summary(summary: dict) -> Geometry:
    """Rebuild a regular Geometry from :meth:`Geometry.summary` (npy side-cars, feature stores)."""

    def axis(spec, n, integer):
        first, _, step = spec
        a = first + step * np.arange(n)
        return a.round().astype(np.int64) if integer else a.astype(np.float64)

    try:
        ni, nx, nt = summary["shape"]
        return Geometry(
            ilines=axis(summary["ilines"], ni, True),
            xlines=axis(summary["xlines"], nx, True),
            samples=axis(summary["samples"], nt, False),
            sample_unit=summary.get("sample_unit", "ms"),
            kind=summary.get("kind", "3d"),
            source=summary.get("source", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SeisfmError(f"geometry description is incomplete ({exc})") from None
