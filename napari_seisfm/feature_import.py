"""Feature volumes computed elsewhere: import a big 4-D array into a feature store, export one back out.

Embeddings computed on a GPU cluster (the NCS scripts, an in-house pipeline) arrive as one array of
``grid x channels`` in ``.npy``, ``.npz``, ``.zarr`` or HDF5, channel-first or channel-last, float32 or
float16. :func:`import_features` reads it lazily (memory-mapped ``.npy``/uncompressed ``.npz``, zarr and
h5py slices), one column of store chunks at a time, checks its grid against the cube (given, or inferred
when exactly one stride fits), fits the same PCA as ``seisfm embed`` on a sample and writes an ordinary
feature store (:class:`~napari_seisfm.features.FeatureVolume`) with the source's provenance; a killed
import resumes chunk by chunk. :func:`export_features` writes a store's unit vectors back to ``.npy`` or
HDF5 (invalid points as NaN) with the grid in a side-car / attributes, which a later import reads.
Format and commands: docs/feature-store.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import struct
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import SeisfmCancelled, SeisfmError
from .features import FORMAT, FeatureVolume, GridSpec, StoreLock, cube_content_hash, store_state

ARRAY_FORMAT = "seisfm-feature-array"  # what `export` writes beside / into the array
SUFFIXES = (".npy", ".npz", ".zarr", ".h5", ".hdf5")
EXPORT_SUFFIXES = (".npy", ".h5", ".hdf5")
AXES = ("il", "xl", "t", "c")
LAYOUTS = (("il", "xl", "t", "c"), ("c", "il", "xl", "t"))  # tried in this order when --layout is not given
AXIS_NAMES = {"il": "il", "inline": "il", "i": "il", "xl": "xl", "crossline": "xl", "x": "xl", "t": "t", "time": "t",
              "z": "t", "depth": "t", "sample": "t", "c": "c", "channel": "c", "channels": "c", "feature": "c", "dim": "c"}
READ_BYTES = 64 * 2**20  # source bytes read at once: one column of store chunks, split along time when larger
PCA_BYTES = 48 * 2**20  # float64 PCA sample (the SVD needs about three times this): 8192 vectors at 768-d
PCA_SAMPLE_CHUNKS = 8  # store chunks read for the PCA sample, spread at random (seed 0) as in `embed`
HASH_BLOCKS, HASH_BLOCK = 16, 2**20  # the source hash reads 16 blocks of 1 MiB spread over the file


# ---------------------------------------------------------------------------- sources


@dataclass
class FeatureArray:
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
        except Exception as exc:  # truncated file, garbled chunk: the library's own error type
            raise SeisfmError(f"{self.name}: cannot read it ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})") from None
        return block.transpose([layout.index(a) for a in AXES])

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> "FeatureArray":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_feature_array(path, dataset: str | None = None) -> FeatureArray:
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
            raise SeisfmError(f"{src.name}: a feature array must be 4-D (three grid axes and the channels), got shape {src.shape}")
        if src.dtype.kind not in "fiu":
            raise SeisfmError(f"{src.name}: unsupported dtype {src.dtype}; expected float or integer values")
        if min(src.shape) < 1:
            raise SeisfmError(f"{src.name}: empty array, shape {src.shape}")
    except SeisfmError:
        src.close()
        raise
    return src


def _open_npy(path: Path) -> FeatureArray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise SeisfmError(f"{path}: not a readable .npy array ({' '.join(str(exc).split())[:120]})") from None
    return FeatureArray(path, "npy", array, attrs=_sidecar_attrs(path))


def _open_npz(path: Path, dataset) -> FeatureArray:
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
                except Exception:
                    continue  # not an array member
    name = _pick(path, dataset, {k: h[1] for k, h in headers.items()}, "array")
    info, shape, fortran, dtype, _ = headers[name]
    if info.compress_type != zipfile.ZIP_STORED:
        raise SeisfmError(f"{path}: array {name!r} is compressed (np.savez_compressed) and cannot be read in pieces; "
                          "save it with np.save or np.savez")
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
    return FeatureArray(path, "npz", array, dataset=name)


def _npy_header(f):
    """``(shape, fortran_order, dtype, header length)`` of the .npy stream ``f`` at its start."""
    start = f.tell()
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"npy format version {version}")
    shape, fortran, dtype = readers[version](f)
    return shape, fortran, dtype, f.tell() - start


def _open_zarr(path: Path, dataset) -> FeatureArray:
    import zarr

    if path.is_dir():
        _refuse_links_out(path)

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
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
    return FeatureArray(path, "zarr", node, dataset=name, attrs=_meta(dict(node.attrs)))


def _open_hdf5(path: Path, dataset) -> FeatureArray:
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
    return FeatureArray(path, "hdf5", ds, dataset=name, attrs=attrs, _closer=f.close)


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
        raise SeisfmError(f"{path}: dataset {name!r} keeps its data in other files (HDF5 external storage: {files}); "
                          "refused: a feature file must hold its own data")
    if virtual:
        raise SeisfmError(f"{path}: dataset {name!r} is an HDF5 virtual dataset (its data comes from other files); "
                          "refused: a feature file must hold its own data (copy it into a plain dataset)")


def _refuse_links_out(path: Path) -> None:
    """Symbolic links inside a .zarr folder that lead out of it would make its chunks other local files."""
    root = path.resolve()
    for folder, dirs, files in os.walk(path):
        for entry in dirs + files:
            p = Path(folder) / entry
            if p.is_symlink():
                target = p.resolve()
                if target != root and root not in target.parents:
                    raise SeisfmError(f"{path}: {p.relative_to(path)} is a link to {target}, outside the array; "
                                      "refused: a feature array must hold its own data")


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
        raise SeisfmError(f"--layout {text!r}: expected the four axes il, xl, t, c in the array's order (e.g. il,xl,t,c or c,il,xl,t)")
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


def fit_grid(shape, cube_shape, *, layout=None, stride=None, origin=None, name="the array",
             cube_name="the cube") -> tuple[tuple[str, ...], GridSpec]:
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
        raise SeisfmError(f"{name}: its grid fits no stride of {cube_name} {shape_txt} ({'; '.join(reasons)}); "
                          f"the cube's grids from 0: {hint}; check --layout, or give --stride and --origin")
    listing = "; ".join(f"layout {layout_text(lay)} stride {g.stride}" for lay, g in fits[:6]) + ("; ..." if len(fits) > 6 else "")
    raise SeisfmError(f"{name}: {len(fits)} grids fit {cube_name} {shape_txt} ({listing}); choose with --layout and --stride")


# ---------------------------------------------------------------------------- import


@dataclass
class ImportPlan:
    """What an import will write: decided before any work, so the napari reader can decline early."""

    layout: tuple[str, ...]
    grid: GridSpec
    dim_in: int
    dim: int
    reduce: bool  # fit a PCA basis (centred, rotated, cut to ``dim``)
    model: str
    provenance: dict


def plan_import(src: FeatureArray, cube, *, layout=None, stride=None, origin=None, pca=None, model_name=None,
                hash_source: bool = True) -> ImportPlan:
    """Resolve layout, grid, dims and provenance of importing ``src`` against ``cube`` (flags first, then
    what the array's attributes / side-car say, then inference)."""
    meta = src.attrs
    exported = meta.get("format") == ARRAY_FORMAT
    cube_name = str(getattr(cube, "path", None) or "the cube")
    if layout is None and meta.get("layout"):
        layout = parse_layout(meta["layout"])
    elif layout is not None and not isinstance(layout, tuple):
        layout = parse_layout(layout)
    if stride is None and meta.get("stride") is not None:
        stride = _triple_attr(src, meta["stride"], "stride")
        origin = origin if origin is not None else (_triple_attr(src, meta["origin"], "origin") if meta.get("origin") is not None else None)
    elif origin is None and meta.get("origin") is not None:
        origin = _triple_attr(src, meta["origin"], "origin")
    if stride is not None:
        stride = tuple(int(s) for s in stride)
    if exported and meta.get("cube_fingerprint") and meta["cube_fingerprint"] != cube.geometry.fingerprint():
        geo = meta.get("cube_geometry", {})
        raise SeisfmError(f"{src.name}: exported from a store of another cube ({geo.get('source', '?')}, shape "
                          f"{geo.get('shape', '?')}); it does not match {cube_name}")
    layout, grid = fit_grid(src.shape, cube.shape, layout=layout, stride=stride, origin=origin, name=src.name, cube_name=cube_name)
    dim_in = int(src.shape[layout.index("c")])
    if pca is None:  # exported stores hold reduced unit vectors already: a second centring only adds error
        pca = 0 if exported and meta.get("unit_vectors") else 64
    if int(pca) < 0:
        raise SeisfmError(f"--pca {pca}: must be 0 (off) or a positive number of dimensions")
    dim = int(pca) if pca and dim_in > int(pca) else dim_in
    model = model_name or meta.get("model") or f"imported:{src.path.name}"
    digest, method = source_hash(src.path) if hash_source else (None, None)
    provenance = {
        "imported_from": str(src.path.resolve()),
        "dataset": src.dataset,
        "source_format": src.kind,
        "source_shape": list(src.shape),
        "source_dtype": str(src.dtype),
        "layout": layout_text(layout),
        "source_sha256": digest,
        "source_hash_method": method,
        "model_name": model,
        "tool": "seisfm features import",
    }
    return ImportPlan(layout, grid, dim_in, dim, bool(pca), str(model), provenance)


def _triple_attr(src, value, what) -> tuple[int, int, int]:
    try:
        t = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3))
    except (TypeError, ValueError):
        t = ()
    if len(t) != 3 or (what == "stride" and min(t) < 1) or min(t) < 0:
        raise SeisfmError(f"{src.name}: its {what} attribute {value!r} is not three non-negative integers")
    return t


def import_features(
    array,
    cube,
    out,
    *,
    layout=None,
    stride=None,
    origin=None,
    dataset: str | None = None,
    pca: int | None = None,
    dtype: str = "int8",
    model_name: str | None = None,
    resume: bool = True,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    chunks=(16, 16, 16),
) -> FeatureVolume:
    """Import the feature array ``array`` (a path) computed on ``cube`` (a Cube or a path) into the store ``out``.

    ``layout``: the array's axis order (``"il,xl,t,c"``, ``"c,il,xl,t"``; inferred when only one fits);
    ``stride``/``origin``: its grid on the cube (inferred from the shapes when only one stride fits, origin
    0); ``pca``: dims to keep (default 64, like `embed`; 0 for arrays exported by seisfm, which hold reduced
    unit vectors already); ``dtype`` int8/float16/float32 (i8/f16/f32). Resumes a partial store imported
    from the same file with the same settings; ``overwrite`` replaces a store. ``progress(done, total)``
    counts chunks; ``cancel`` is checked between reads. Memory: one read of at most ``READ_BYTES`` of the
    source plus the PCA sample, whatever the array's size.
    """
    from .cube import open_cube
    from .extract import DTYPE_ALIASES, _cancelled, _open_for_resume, _report

    if isinstance(cube, (str, Path)):
        with open_cube(cube) as opened:
            return import_features(array, opened, out, layout=layout, stride=stride, origin=origin, dataset=dataset, pca=pca,
                                   dtype=dtype, model_name=model_name, resume=resume, overwrite=overwrite, progress=progress,
                                   cancel=cancel, chunks=chunks)
    out = Path(out)
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPE_ALIASES.values():
        raise SeisfmError(f"feature dtype must be one of i8, f16, f32, got {dtype!r}")
    with open_feature_array(array, dataset) as src:
        plan = plan_import(src, cube, layout=layout, stride=stride, origin=origin, pca=pca, model_name=model_name)
        fingerprint = cube.geometry.fingerprint()
        wanted = {"model": plan.model, "stride": list(plan.grid.stride), "origin": list(plan.grid.origin),
                  "grid_shape": list(plan.grid.shape), "cube_fingerprint": fingerprint, "dim_in": plan.dim_in,
                  "dim": plan.dim, "dtype": dtype}
        with StoreLock(out):
            state = store_state(out)
            content = cube_content_hash(cube)
            fv = None
            if state == "other":
                raise SeisfmError(f"{out}: exists and is not a feature store; refusing to overwrite it")
            if state == "store" and not overwrite:
                if not resume:
                    raise SeisfmError(f"{out}: already exists; pass --overwrite to replace it")
                fv = _open_for_resume(out, wanted, content)
                if fv.provenance.get("source_sha256") != plan.provenance["source_sha256"]:
                    raise SeisfmError(f"{out}: already exists and was not imported from this {src.path.name}; pass --overwrite to replace it")
                if fv.complete:
                    _report(progress, *fv.progress())
                    return FeatureVolume.open(out)
            if fv is None:
                chunks = tuple(int(c) for c in chunks)
                basis = _fit_basis(src, plan, chunks, cancel) if plan.reduce else None
                fv = FeatureVolume.create(
                    out, grid=plan.grid, dim_in=plan.dim_in, dtype=dtype, model=plan.model, cube_fingerprint=fingerprint,
                    cube_content=content, cube_geometry=cube.geometry.summary(), pca=basis, chunks=chunks,
                    overwrite=overwrite or state in ("empty", "store", "half"),
                    provenance={**plan.provenance, "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                )
            _write(src, fv, plan, cube.geometry.dead, progress, cancel, _cancelled, _report)
            fv.mark_complete()
            return FeatureVolume.open(out)


def _columns(fv: FeatureVolume, per_read: int):
    """Reads of the import: ``[chunk indices]`` sharing inline and crossline, ``per_read`` along time at most."""
    n = [-(-g // c) for g, c in zip(fv.grid.shape, fv.chunks)]
    for ci, cx in itertools.product(range(n[0]), range(n[1])):
        pending = [(ci, cx, ct) for ct in range(n[2]) if not fv.chunk_done((ci, cx, ct))]
        for k in range(0, len(pending), per_read):
            yield pending[k : k + per_read]


def _write(src, fv, plan, dead, progress, cancel, cancelled, report) -> None:
    itemsize = src.dtype.itemsize * plan.dim_in
    per_read = max(1, READ_BYTES // (int(np.prod(fv.chunks)) * itemsize))
    done, total = fv.progress()
    report(progress, done, total)
    for group in _columns(fv, per_read):
        if cancelled(cancel):
            raise SeisfmCancelled(f"{fv.path}: stopped after {done}/{total} chunks; run again to resume")
        regions = [fv.chunk_region(idx) for idx in group]
        il, xl = regions[0][0], regions[0][1]
        t0, t1 = regions[0][2].start, regions[-1][2].stop  # consecutive when nothing was done in between
        contiguous = all(r[2].start == prev[2].stop for prev, r in zip(regions, regions[1:]))
        spans = [(t0, t1, group, regions)] if contiguous else [(r[2].start, r[2].stop, [i], [r]) for i, r in zip(group, regions)]
        for a, b, idxs, regs in spans:
            block = src.read(plan.layout, il, xl, slice(a, b))
            for idx, reg in zip(idxs, regs):
                vectors = block[:, :, reg[2].start - a : reg[2].stop - a]
                valid = np.ones(vectors.shape[:3], bool)
                if dead is not None:
                    ii, xx = (plan.grid.origin[k] + plan.grid.stride[k] * np.arange(reg[k].start, reg[k].stop) for k in (0, 1))
                    valid &= ~np.asarray(dead, bool)[np.ix_(ii, xx)][..., None]
                fv.write_chunk(idx, vectors, valid)
                done += 1
                report(progress, done, total)
            del block


def _fit_basis(src, plan: ImportPlan, chunks, cancel):
    """The `embed` PCA (:func:`~napari_seisfm.extract.pca_basis`) on finite vectors of a few store chunks
    spread at random, at most ``PCA_BYTES`` of float64 whatever the width."""
    from .extract import PCA_SAMPLE_VECTORS, _cancelled, pca_basis

    n_max = int(max(2 * plan.dim_in, min(PCA_SAMPLE_VECTORS, PCA_BYTES // (8 * plan.dim_in))))
    n_chunks = [-(-g // c) for g, c in zip(plan.grid.shape, chunks)]
    all_idx = np.stack(np.meshgrid(*(np.arange(n) for n in n_chunks), indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(0)
    picks = all_idx[rng.choice(len(all_idx), min(PCA_SAMPLE_CHUNKS, len(all_idx)), replace=False)]
    per_chunk = -(-n_max // len(picks))
    x = np.empty((n_max, plan.dim_in), np.float64)  # filled in place: no list of rows to concatenate
    n = 0
    for idx in picks:
        if _cancelled(cancel):
            raise SeisfmCancelled("stopped while fitting the PCA basis; nothing was written")
        region = [slice(i * c, min((i + 1) * c, g)) for i, c, g in zip(idx, chunks, plan.grid.shape)]
        v = src.read(plan.layout, *region).reshape(-1, plan.dim_in)
        v = v[np.isfinite(v).all(axis=1)]
        if len(v) > per_chunk:
            v = v[np.sort(rng.choice(len(v), per_chunk, replace=False))]
        take = min(len(v), n_max - n)
        x[n : n + take] = v[:take]
        n += take
    return pca_basis(x[:n], plan.dim)


# ---------------------------------------------------------------------------- export


def export_features(store, out, *, dtype: str = "float32", overwrite: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """Write a complete store's vectors (decoded unit vectors, invalid points NaN) to ``.npy`` (with a
    ``<out>.json`` side-car) or HDF5 (dataset ``features`` with the same record in its ``seisfm``
    attribute), channel-last ``(il, xl, t, dim)``. Built in ``<out>.partial...`` and renamed when done."""
    from .cube import check_free_space, discard, prepare_output, write_failed
    from .extract import DTYPE_ALIASES

    out = Path(out)
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in ("float32", "float16"):
        raise SeisfmError(f"export dtype must be f32 or f16, got {dtype!r}")
    suffix = out.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise SeisfmError(f"{out}: export writes .npy or .h5/.hdf5, not {suffix or '(no suffix)'}")
    fv = FeatureVolume.open(store)
    if out.exists() and not overwrite:
        raise SeisfmError(f"{out}: already exists; pass --overwrite to replace it")
    prepare_output(out)
    record = export_record(fv)
    shape = (*fv.grid.shape, fv.dim)
    check_free_space(out, int(np.prod(shape)) * np.dtype(dtype).itemsize, "the export")
    tmp = out.with_name(out.name + ".partial" + suffix)
    meta = out.with_name(out.name + ".json")
    meta_tmp = out.with_name(meta.name + ".partial")
    try:
        with open(tmp, "w+b") as raw:
            if suffix == ".npy":
                _write_npy(fv, raw, shape, dtype, progress)
            else:
                _write_hdf5(fv, raw, shape, dtype, record, progress)
            raw.flush()
            os.fsync(raw.fileno())  # a file system that allocates late reports a full disk here, not after the rename
        if suffix == ".npy":
            meta_tmp.write_text(json.dumps(record, indent=1))
            os.replace(tmp, out)
            os.replace(meta_tmp, meta)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        raise write_failed(out, exc) from None
    finally:
        discard(tmp)
        discard(meta_tmp)
    return out


def _write_npy(fv: FeatureVolume, f, shape, dtype, progress) -> None:
    """The .npy written with ordinary writes, never through a memory map: a full disk is then an OSError
    (ENOSPC), where a write into a mapped page beyond the disk's end is SIGBUS and kills the process."""
    np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                             "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    start = f.tell()
    row = shape[2] * shape[3] * np.dtype(dtype).itemsize  # one (inline, crossline) position: all times, all dims
    f.truncate(start + shape[0] * shape[1] * row)
    fd = f.fileno()
    f.flush()
    dim_bytes = shape[3] * np.dtype(dtype).itemsize

    def write(sl, block):
        for a in range(block.shape[0]):
            for b in range(block.shape[1]):
                off = start + ((sl[0].start + a) * shape[1] + sl[1].start + b) * row + sl[2].start * dim_bytes
                data = memoryview(np.ascontiguousarray(block[a, b])).cast("B")
                while data:
                    n = os.pwrite(fd, data, off)
                    data, off = data[n:], off + n

    _export_chunks(fv, write, dtype, progress)


class _FailOnce:
    """A binary file for h5py's ``fileobj`` driver that records the first failed write and then accepts
    (drops) every later one, so HDF5 never meets an error in its own writes: a full disk under the
    default driver left HDF5 failing to close the file and the process segfaulting at exit."""

    def __init__(self, f):
        self.f, self.error = f, None

    def _guard(self, fn, *args, default=None):
        if self.error is None:
            try:
                return fn(*args)
            except OSError as exc:
                self.error = exc
        return default

    def write(self, data):
        return self._guard(self.f.write, data, default=len(memoryview(data).cast("B")))

    def truncate(self, size=None):
        return self._guard(self.f.truncate, size, default=size)

    def flush(self):
        self._guard(self.f.flush)

    def read(self, n=-1):
        return self.f.read(n)

    def readinto(self, buffer):
        return self.f.readinto(buffer)

    def seek(self, *args):
        return self.f.seek(*args)

    def tell(self):
        return self.f.tell()


def _write_hdf5(fv: FeatureVolume, f, shape, dtype, record, progress) -> None:
    import h5py

    guarded = _FailOnce(f)
    with h5py.File(guarded, "w") as h5:
        ds = h5.create_dataset("features", shape=shape, dtype=dtype, chunks=(*fv.chunks, fv.dim))
        ds.attrs["seisfm"] = json.dumps(record)
        for key in ("layout", "stride", "origin", "model"):
            ds.attrs[key] = record[key]

        def write(sl, block):
            if guarded.error is None:
                ds[sl] = block

        _export_chunks(fv, write, dtype, progress)
    if guarded.error is not None:
        raise guarded.error


def _export_chunks(fv: FeatureVolume, write, dtype, progress) -> None:
    total = fv.progress()[1]
    for n, (_, sl, v, ok, _, _) in enumerate(fv.scan(), 1):  # damaged chunks come back invalid
        block = np.full((*(s.stop - s.start for s in sl), fv.dim), np.nan, dtype)
        if v is not None and ok is not None:
            block[ok] = fv.decode(v[ok]).astype(dtype)
        write(sl, block)
        if progress is not None:
            progress(n, total)


def export_record(fv: FeatureVolume) -> dict:
    """What an exported array says about itself (read back by :func:`plan_import`)."""
    return {
        "format": ARRAY_FORMAT,
        "version": 1,
        "layout": "il,xl,t,c",
        "grid_shape": list(fv.grid.shape),
        "stride": list(fv.grid.stride),
        "origin": list(fv.grid.origin),
        "dim": fv.dim,
        "model": fv.model,
        "unit_vectors": True,  # L2-normalised after the store's PCA: import keeps them as they are
        "invalid": "NaN",
        "cube_fingerprint": fv.cube_fingerprint,
        "cube_content_sha256": fv.cube_content,
        "cube_geometry": fv.cube_geometry,
        "exported_from": str(fv.path.resolve()),
    }


# ---------------------------------------------------------------------------- info


def describe_store(path) -> dict:
    """Everything `seisfm features info` prints, JSON-able: grid, model, dims, completeness, size, cube, provenance."""
    fv = FeatureVolume.open(path, allow_partial=True)
    done, total = fv.progress()
    size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
    geo = fv.cube_geometry
    return {
        "path": str(fv.path),
        "grid_shape": list(fv.grid.shape),
        "stride": list(fv.grid.stride),
        "origin": list(fv.grid.origin),
        "model": fv.model,
        "checkpoint_sha256": fv.checkpoint_sha256,
        "dim": fv.dim,
        "dim_in": int(fv.pca_components.shape[1]) if fv.pca_components is not None else fv.dim,
        "pca": fv.pca_components is not None,
        "dtype": fv.dtype,
        "complete": fv.complete,
        "chunks_done": done,
        "chunks_total": total,
        "size_bytes": size,
        "cube": {"source": geo.get("source"), "shape": geo.get("shape"), "fingerprint": fv.cube_fingerprint,
                 "content_sha256": fv.cube_content},
        "provenance": fv.provenance,
    }
