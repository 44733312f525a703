"""Feature arrays computed elsewhere, as sources of an import: a 4-D array of ``grid x channels`` in ``.npy``,
``.npz``, ``.zarr`` or HDF5, channel-first or channel-last, opened lazily (memory-mapped ``.npy``/uncompressed
``.npz``, zarr and h5py slices) as a :class:`SourceArray`; its layout and its grid on a cube (:func:`fit_grid`);
a cheap hash of the file (:func:`source_hash`). :mod:`~napari_seisfm.store.interchange` writes it into a store.
Format and commands: docs/feature-store.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SeisfmError
from .grid import GridSpec
from .volume import FORMAT

ARRAY_FORMAT = "seisfm-feature-array"  # what `export` writes beside / into the array
SUFFIXES = (".npy", ".npz", ".zarr", ".h5", ".hdf5")
AXES = ("il", "xl", "t", "c")
LAYOUTS = (("il", "xl", "t", "c"), ("c", "il", "xl", "t"))  # tried in this order when --layout is not given
AXIS_NAMES = {
    "il": "il",
    "inline": "il",
    "i": "il",
    "xl": "xl",
    "crossline": "xl",
    "x": "xl",
    "t": "t",
    "time": "t",
    "z": "t",
    "depth": "t",
    "sample": "t",
    "c": "c",
    "channel": "c",
    "channels": "c",
    "feature": "c",
    "dim": "c",
}
HASH_BLOCKS, HASH_BLOCK = 16, 2**20  # the source hash reads 16 blocks of 1 MiB spread over the file


# ---------------------------------------------------------------------------- sources


@dataclass
class SourceArray:
    """A 4-D array on disk, read in slices: ``array[...]`` never loads more than asked for."""

    path: Path
    kind: str  # npy, npz, zarr, hdf5
    array: object  # np.memmap, zarr.Array or h5py.Dataset
    dataset: str | None = None
    attrs: dict = field(default_factory=dict)  # metadata found with the array (export side-car, attributes)
    _closer: Callable | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def name(self) -> str:
        return f"{self.path}" + (f" [{self.dataset}]" if self.dataset and self.kind != "npy" else "")

    def read(self, layout, il: slice, xl: slice, t: slice) -> np.ndarray:
        """Grid block ``(il, xl, t, channels)`` in the source dtype (a transposed view for channel-first)."""
        key = [slice(None)] * 4
        for axis, sl in zip(("il", "xl", "t"), (il, xl, t)):
            key[layout.index(axis)] = sl
        try:
            block = np.asarray(self.array[tuple(key)])
        except Exception as exc:  # truncated file, garbled chunk: the library's own error type  # noqa: BLE001
            raise SeisfmError(
                f"{self.name}: cannot read it ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})"
            ) from None
        return block.transpose([layout.index(a) for a in AXES])

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> SourceArray:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source_array(path, dataset: str | None = None) -> SourceArray:
    """Open a ``.npy``, ``.npz``, ``.zarr`` or ``.h5``/``.hdf5`` feature array lazily; ``dataset`` picks
    an array in a container (default: its only 4-D array)."""
    path = Path(path)
    if not path.exists():
        raise SeisfmError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if dataset:
            raise SeisfmError(f"{path}: a .npy file holds one array; drop --dataset {dataset!r}")
        src = _open_npy(path)
    elif suffix == ".npz":
        src = _open_npz(path, dataset)
    elif suffix == ".zarr":
        src = _open_zarr(path, dataset)
    elif suffix in (".h5", ".hdf5"):
        src = _open_hdf5(path, dataset)
    else:
        raise SeisfmError(f"{path}: unsupported feature array type {suffix or '(none)'}; expected {', '.join(SUFFIXES)}")
    try:
        if len(src.shape) != 4:
            raise SeisfmError(
                f"{src.name}: a feature array must be 4-D (three grid axes and the channels), got shape {src.shape}"
            )
        if src.dtype.kind not in "fiu":
            raise SeisfmError(f"{src.name}: unsupported dtype {src.dtype}; expected float or integer values")
        if min(src.shape) < 1:
            raise SeisfmError(f"{src.name}: empty array, shape {src.shape}")
    except SeisfmError:
        src.close()
        raise
    return src


def _open_npy(path: Path) -> SourceArray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise SeisfmError(f"{path}: not a readable .npy array ({' '.join(str(exc).split())[:120]})") from None
    return SourceArray(path, "npy", array, attrs=_sidecar_attrs(path))


def _open_npz(path: Path, dataset) -> SourceArray:
    """A member of an uncompressed ``.npz`` memory-mapped at its offset in the zip file."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SeisfmError(f"{path}: not a readable .npz file ({exc.__class__.__name__})") from None
    with zf:
        headers = {}
        for info in zf.infolist():
            if info.filename.endswith(".npy"):
                try:
                    with zf.open(info) as f:
                        headers[info.filename[:-4]] = (info, *_npy_header(f))
                except Exception:  # noqa: BLE001
                    continue  # not an array member
    name = _pick(path, dataset, {k: h[1] for k, h in headers.items()}, "array")
    info, shape, fortran, dtype, _ = headers[name]
    if info.compress_type != zipfile.ZIP_STORED:
        raise SeisfmError(
            f"{path}: array {name!r} is compressed (np.savez_compressed) and cannot be read in pieces; "
            "save it with np.save or np.savez"
        )
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        start = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
        f.seek(start)
        offset = start + _npy_header(f)[3]
    try:
        array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    except (ValueError, OSError) as exc:
        raise SeisfmError(f"{path}: cannot map array {name!r} ({' '.join(str(exc).split())[:120]})") from None
    return SourceArray(path, "npz", array, dataset=name)


def _npy_header(f):
    """``(shape, fortran_order, dtype, header length)`` of the .npy stream ``f`` at its start."""
    start = f.tell()
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"npy format version {version}")
    shape, fortran, dtype = readers[version](f)
    return shape, fortran, dtype, f.tell() - start


def _open_zarr(path: Path, dataset) -> SourceArray:
    import zarr

    if path.is_dir():
        _refuse_links_out(path)

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001
        raise SeisfmError(f"{path}: not a readable zarr array or group ({exc.__class__.__name__})") from None
    if isinstance(node, zarr.Group):
        if node.attrs.get("format") == FORMAT:
            raise SeisfmError(f"{path}: already a napari-seisfm feature store; use it as it is (`seisfm features info {path}`)")
        arrays = {}
        for name, arr in node.members(max_depth=None):
            if isinstance(arr, zarr.Array):
                arrays[name] = arr
        name = _pick(path, dataset, {k: a.shape for k, a in arrays.items()}, "array")
        node = arrays[name]
    else:
        name = None
        if dataset:
            raise SeisfmError(f"{path}: is a single array; drop --dataset {dataset!r}")
    return SourceArray(path, "zarr", node, dataset=name, attrs=_meta(dict(node.attrs)))


def _open_hdf5(path: Path, dataset) -> SourceArray:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SeisfmError(f"{path}: not a readable HDF5 file ({' '.join(str(exc).split())[:100]})") from None
    try:
        datasets = {}
        f.visititems(lambda name, obj: datasets.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
        name = _pick(path, dataset.strip("/") if dataset else None, {k: d.shape for k, d in datasets.items()}, "dataset")
        ds = datasets[name]
        _refuse_outside_data(path, name, ds)
        attrs = _meta({k: _plain(v) for k, v in ds.attrs.items()})
    except BaseException:
        f.close()
        raise
    return SourceArray(path, "hdf5", ds, dataset=name, attrs=attrs, _closer=f.close)


def _refuse_outside_data(path, name, ds) -> None:
    """A shared feature file must never make us read other local files: HDF5 external storage (raw data
    kept in other files, e.g. ``/etc/passwd``) and virtual datasets (data mapped from other HDF5 files)
    are refused, whatever those files are."""
    try:
        external = ds.external
        virtual = ds.is_virtual
    except Exception as exc:  # noqa: BLE001 - an unreadable creation property list is no better
        raise SeisfmError(f"{path}: dataset {name!r} has an unreadable storage layout ({exc.__class__.__name__})") from None
    if external:
        files = ", ".join(str(e[0]) for e in external[:3]) + (", ..." if len(external) > 3 else "")
        raise SeisfmError(
            f"{path}: dataset {name!r} keeps its data in other files (HDF5 external storage: {files}); "
            "refused: a feature file must hold its own data"
        )
    if virtual:
        raise SeisfmError(
            f"{path}: dataset {name!r} is an HDF5 virtual dataset (its data comes from other files); "
            "refused: a feature file must hold its own data (copy it into a plain dataset)"
        )


def _refuse_links_out(path: Path) -> None:
    """Symbolic links inside a .zarr folder that lead out of it would make its chunks other local files."""
    root = path.resolve()
    for folder, dirs, files in os.walk(path):
        for entry in dirs + files:
            p = Path(folder) / entry
            if p.is_symlink():
                target = p.resolve()
                if target != root and root not in target.parents:
                    raise SeisfmError(
                        f"{path}: {p.relative_to(path)} is a link to {target}, outside the array; "
                        "refused: a feature array must hold its own data"
                    )


def _pick(path, wanted, shapes: dict, what: str) -> str:
    """The member named ``wanted``, or the only 4-D one; a clear line listing the members otherwise."""
    listing = ", ".join(f"{k} {tuple(s)}" for k, s in shapes.items()) or "none"
    if wanted:
        if wanted not in shapes:
            raise SeisfmError(f"{path}: no {what} {wanted!r} in it ({what}s: {listing})")
        return wanted
    four = [k for k, s in shapes.items() if len(s) == 4]
    if len(four) == 1:
        return four[0]
    if not four:
        raise SeisfmError(f"{path}: no 4-D {what} in it ({what}s: {listing})")
    raise SeisfmError(f"{path}: several 4-D {what}s ({', '.join(four)}); choose one with --dataset")


def _plain(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _meta(attrs: dict) -> dict:
    """Attributes of an array: the export's JSON record when present, else the plain keys."""
    record = attrs.get("seisfm")
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except ValueError:
            record = None
    if isinstance(record, dict) and record.get("format") == ARRAY_FORMAT:
        return record
    return {k: attrs[k] for k in ("layout", "stride", "origin", "model") if k in attrs}


def _sidecar_attrs(path: Path) -> dict:
    meta = path.with_name(path.name + ".json")
    if not meta.is_file():
        return {}
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise SeisfmError(f"{meta}: unreadable side-car ({exc.__class__.__name__})") from None
    if not isinstance(record, dict):
        return {}
    return record if record.get("format") == ARRAY_FORMAT else _meta(record)  # someone else's side-car: plain keys only


def source_hash(path) -> tuple[str, str]:
    """``(hex, method)``: sha256 of the size and 16 blocks of 1 MiB spread over the file (whole file when
    smaller); for a directory (zarr), of every file's name and size, the metadata files and 16 chunk files.
    Cheap on a 25 GB array, and enough to tell a resumed import that its source changed."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for p in files:
            h.update(f"{p.relative_to(path)}\0{p.stat().st_size}\n".encode())
        meta = [p for p in files if p.name in ("zarr.json", ".zarray", ".zattrs", ".zgroup")]
        data = [p for p in files if p not in meta]
        picks = np.unique(np.linspace(0, len(data) - 1, HASH_BLOCKS).round().astype(int)) if data else []
        for p in meta + [data[int(i)] for i in picks]:
            h.update(p.read_bytes())
        return h.hexdigest()[:16], "sha256 of file names and sizes, metadata and 16 chunk files"
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        if size <= HASH_BLOCKS * HASH_BLOCK:
            h.update(f.read())
        else:
            for off in np.linspace(0, size - HASH_BLOCK, HASH_BLOCKS).astype(np.int64):
                f.seek(int(off))
                h.update(f.read(HASH_BLOCK))
    return h.hexdigest()[:16], "sha256 of the size and 16 blocks of 1 MiB spread over the file"


# ---------------------------------------------------------------------------- layout and grid


def parse_layout(text) -> tuple[str, str, str, str]:
    """``"il,xl,t,c"`` / ``"c,il,xl,t"`` (any order of the four axes) -> the axis names in array order."""
    parts = tuple(AXIS_NAMES.get(p.strip().lower(), p.strip().lower()) for p in str(text).split(","))
    if sorted(parts) != sorted(AXES):
        raise SeisfmError(
            f"--layout {text!r}: expected the four axes il, xl, t, c in the array's order (e.g. il,xl,t,c or c,il,xl,t)"
        )
    return parts


def layout_text(layout) -> str:
    return ",".join(layout)


def _axis_strides(g: int, n: int, origin: int, stride: int | None) -> list[int]:
    """Strides that put ``g`` grid points from ``origin`` inside ``n`` samples: a given stride when its
    last point is inside; otherwise every stride that also covers the axis (``ceil((n - origin) / s) == g``,
    the `embed` grid when the origin is 0)."""
    if origin >= n:
        return []
    if stride is not None:
        return [stride] if origin + stride * (g - 1) <= n - 1 else []
    if g == 1:
        return [max(1, n - origin)]
    return [s for s in range(1, n) if -(-(n - origin) // s) == g]


def fit_grid(
    shape, cube_shape, *, layout=None, stride=None, origin=None, name="the array", cube_name="the cube"
) -> tuple[tuple[str, ...], GridSpec]:
    """The one ``(layout, GridSpec)`` under which a 4-D array of ``shape`` lies on the cube; a
    :class:`SeisfmError` listing the candidates when none or several fit. Without ``origin`` the grid
    starts at sample 0 (as `embed` writes it); without ``stride`` it is inferred per axis."""
    origin = tuple(int(o) for o in origin) if origin is not None else (0, 0, 0)
    layouts = [tuple(layout)] if layout else list(LAYOUTS)
    fits, reasons = [], []
    for lay in layouts:
        g = tuple(int(shape[lay.index(a)]) for a in ("il", "xl", "t"))
        per_axis = [_axis_strides(g[k], int(cube_shape[k]), origin[k], stride[k] if stride else None) for k in range(3)]
        for s in itertools.product(*per_axis):
            fits.append((lay, GridSpec(g, tuple(int(v) for v in s), origin)))
        bad = [k for k in range(3) if not per_axis[k]]
        if bad:
            k = bad[0]
            axis = ("il", "xl", "t")[k]
            how = f"stride {stride[k]}, origin {origin[k]}" if stride else f"origin {origin[k]}"
            reasons.append(f"layout {layout_text(lay)}: {g[k]} points along {axis} do not fit {cube_shape[k]} samples ({how})")
    if len(fits) == 1:
        return fits[0]
    shape_txt = tuple(int(n) for n in cube_shape)
    if not fits:
        hint = ", ".join(f"stride {s} gives {GridSpec.for_cube(cube_shape, s).shape}" for s in (1, 2, 4, 8))
        raise SeisfmError(
            f"{name}: its grid fits no stride of {cube_name} {shape_txt} ({'; '.join(reasons)}); "
            f"the cube's grids from 0: {hint}; check --layout, or give --stride and --origin"
        )
    listing = "; ".join(f"layout {layout_text(lay)} stride {g.stride}" for lay, g in fits[:6]) + (
        "; ..." if len(fits) > 6 else ""
    )
    raise SeisfmError(f"{name}: {len(fits)} grids fit {cube_name} {shape_txt} ({listing}); choose with --layout and --stride")
