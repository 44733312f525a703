"""Feature volumes computed elsewhere: import a big 4-D array into a feature store, export one back out.

:func:`import_features` reads a :class:`~napari_seisfm.store.sources.SourceArray` one column of store chunks
at a time, checks its grid against the cube (given, or inferred when exactly one stride fits), fits the same
PCA as ``seisfm embed`` on a sample and writes an ordinary feature store
(:class:`~napari_seisfm.store.volume.FeatureVolume`) with the source's provenance; a killed import resumes
chunk by chunk. :func:`export_features` writes a store's unit vectors back to ``.npy`` or HDF5 (invalid points
as NaN) with the grid in a side-car / attributes, which a later import reads. :func:`describe_store` is
`seisfm features info`. Format and commands: docs/feature-store.md.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import progress as progress_
from ..errors import SeisfmError
from ..io.output import atomic_output, check_free_space, prepare_output
from .encoding import DTYPE_ALIASES, PCA_SAMPLE_VECTORS, pca_basis
from .grid import GridSpec, chunk_counts, chunk_region, live_points
from .lock import StoreLock
from .sources import ARRAY_FORMAT, SourceArray, fit_grid, layout_text, open_source_array, parse_layout, source_hash
from .volume import FeatureVolume, cube_content_hash, open_for_resume, store_state

EXPORT_SUFFIXES = (".npy", ".h5", ".hdf5")
READ_BYTES = 64 * 2**20  # source bytes read at once: one column of store chunks, split along time when larger
PCA_BYTES = 48 * 2**20  # float64 PCA sample (the SVD needs about three times this): 8192 vectors at 768-d
PCA_SAMPLE_CHUNKS = 8  # store chunks read for the PCA sample, spread at random (seed 0) as in `embed`


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


def plan_import(
    src: SourceArray, cube, *, layout=None, stride=None, origin=None, pca=None, model_name=None, hash_source: bool = True
) -> ImportPlan:
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
        origin = (
            origin
            if origin is not None
            else (_triple_attr(src, meta["origin"], "origin") if meta.get("origin") is not None else None)
        )
    elif origin is None and meta.get("origin") is not None:
        origin = _triple_attr(src, meta["origin"], "origin")
    if stride is not None:
        stride = tuple(int(s) for s in stride)
    if exported and meta.get("cube_fingerprint") and meta["cube_fingerprint"] != cube.geometry.fingerprint():
        geo = meta.get("cube_geometry", {})
        raise SeisfmError(
            f"{src.name}: exported from a store of another cube ({geo.get('source', '?')}, shape "
            f"{geo.get('shape', '?')}); it does not match {cube_name}"
        )
    layout, grid = fit_grid(
        src.shape, cube.shape, layout=layout, stride=stride, origin=origin, name=src.name, cube_name=cube_name
    )
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
    if isinstance(cube, (str, Path)):
        from ..io import open_cube

        with open_cube(cube) as opened:
            return import_features(
                array,
                opened,
                out,
                layout=layout,
                stride=stride,
                origin=origin,
                dataset=dataset,
                pca=pca,
                dtype=dtype,
                model_name=model_name,
                resume=resume,
                overwrite=overwrite,
                progress=progress,
                cancel=cancel,
                chunks=chunks,
            )
    out = Path(out)
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPE_ALIASES.values():
        raise SeisfmError(f"feature dtype must be one of i8, f16, f32, got {dtype!r}")
    with open_source_array(array, dataset) as src:
        plan = plan_import(src, cube, layout=layout, stride=stride, origin=origin, pca=pca, model_name=model_name)
        fingerprint = cube.geometry.fingerprint()
        wanted = {
            "model": plan.model,
            "stride": list(plan.grid.stride),
            "origin": list(plan.grid.origin),
            "grid_shape": list(plan.grid.shape),
            "cube_fingerprint": fingerprint,
            "dim_in": plan.dim_in,
            "dim": plan.dim,
            "dtype": dtype,
        }
        with StoreLock(out):
            state = store_state(out)
            content = cube_content_hash(cube)
            fv = None
            if state == "other":
                raise SeisfmError(f"{out}: exists and is not a feature store; refusing to overwrite it")
            if state == "store" and not overwrite:
                if not resume:
                    raise SeisfmError(f"{out}: already exists; pass --overwrite to replace it")
                fv = open_for_resume(out, wanted, content)
                if fv.provenance.get("source_sha256") != plan.provenance["source_sha256"]:
                    raise SeisfmError(
                        f"{out}: already exists and was not imported from this {src.path.name}; pass --overwrite to replace it"
                    )
                if fv.complete:
                    progress_.report(progress, *fv.progress())
                    return FeatureVolume.open(out)
            if fv is None:
                chunks = tuple(int(c) for c in chunks)
                basis = _fit_basis(src, plan, chunks, cancel) if plan.reduce else None
                fv = FeatureVolume.create(
                    out,
                    grid=plan.grid,
                    dim_in=plan.dim_in,
                    dtype=dtype,
                    model=plan.model,
                    cube_fingerprint=fingerprint,
                    cube_content=content,
                    cube_summary=cube.geometry.summary(),
                    pca=basis,
                    chunks=chunks,
                    overwrite=overwrite or state in ("empty", "store", "half"),
                    provenance={**plan.provenance, "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                )
            _write(src, fv, plan, cube.geometry.dead, progress, cancel)
            fv.mark_complete()
            return FeatureVolume.open(out)


def _columns(fv: FeatureVolume, per_read: int):
    """Reads of the import: ``[chunk indices]`` sharing inline and crossline, ``per_read`` along time at most."""
    n = chunk_counts(fv.grid.shape, fv.chunks)
    for ci, cx in itertools.product(range(n[0]), range(n[1])):
        pending = [(ci, cx, ct) for ct in range(n[2]) if not fv.chunk_done((ci, cx, ct))]
        for k in range(0, len(pending), per_read):
            yield pending[k : k + per_read]


def _write(src, fv, plan, dead, progress, cancel) -> None:
    itemsize = src.dtype.itemsize * plan.dim_in
    per_read = max(1, READ_BYTES // (int(np.prod(fv.chunks)) * itemsize))
    done, total = fv.progress()
    progress_.report(progress, done, total)
    for group in _columns(fv, per_read):
        progress_.check(cancel, f"{fv.path}: stopped after {done}/{total} chunks; run again to resume")
        regions = [fv.chunk_region(idx) for idx in group]
        il, xl = regions[0][0], regions[0][1]
        t0, t1 = regions[0][2].start, regions[-1][2].stop  # consecutive when nothing was done in between
        contiguous = all(r[2].start == prev[2].stop for prev, r in zip(regions, regions[1:]))
        spans = [(t0, t1, group, regions)] if contiguous else [(r[2].start, r[2].stop, [i], [r]) for i, r in zip(group, regions)]
        for a, b, idxs, regs in spans:
            block = src.read(plan.layout, il, xl, slice(a, b))
            for idx, reg in zip(idxs, regs):
                vectors = block[:, :, reg[2].start - a : reg[2].stop - a]
                fv.write_chunk(idx, vectors, live_points(dead, plan.grid, reg))
                done += 1
                progress_.report(progress, done, total)
            del block


def _fit_basis(src, plan: ImportPlan, chunks, cancel):
    """The `embed` PCA (:func:`~napari_seisfm.store.encoding.pca_basis`) on finite vectors of a few store chunks
    spread at random, at most ``PCA_BYTES`` of float64 whatever the width."""
    n_max = int(max(2 * plan.dim_in, min(PCA_SAMPLE_VECTORS, PCA_BYTES // (8 * plan.dim_in))))
    n_chunks = chunk_counts(plan.grid.shape, chunks)
    all_idx = np.stack(np.meshgrid(*(np.arange(n) for n in n_chunks), indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(0)
    picks = all_idx[rng.choice(len(all_idx), min(PCA_SAMPLE_CHUNKS, len(all_idx)), replace=False)]
    per_chunk = -(-n_max // len(picks))
    x = np.empty((n_max, plan.dim_in), np.float64)  # filled in place: no list of rows to concatenate
    n = 0
    for idx in picks:
        progress_.check(cancel, "stopped while fitting the PCA basis; nothing was written")
        region = chunk_region(idx, chunks, plan.grid.shape)
        v = src.read(plan.layout, *region).reshape(-1, plan.dim_in)
        v = v[np.isfinite(v).all(axis=1)]
        if len(v) > per_chunk:
            v = v[np.sort(rng.choice(len(v), per_chunk, replace=False))]
        take = min(len(v), n_max - n)
        x[n : n + take] = v[:take]
        n += take
    return pca_basis(x[:n], plan.dim)


# ---------------------------------------------------------------------------- export


def export_features(
    store, out, *, dtype: str = "float32", overwrite: bool = False, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write a complete store's vectors (decoded unit vectors, invalid points NaN) to ``.npy`` (with a
    ``<out>.json`` side-car) or HDF5 (dataset ``features`` with the same record in its ``seisfm``
    attribute), channel-last ``(il, xl, t, dim)``. Built in ``<out>.partial<suffix>`` and renamed when done (:func:`~napari_seisfm.io.output.atomic_output`)."""
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
    meta = out.with_name(out.name + ".json")
    with atomic_output(out) as tmp:
        with open(tmp, "w+b") as raw:
            if suffix == ".npy":
                _write_npy(fv, raw, shape, dtype, progress)
            else:
                _write_hdf5(fv, raw, shape, dtype, record, progress)
            raw.flush()
            os.fsync(raw.fileno())  # a file system that allocates late reports a full disk here, not after the rename
        if suffix == ".npy":
            with atomic_output(meta) as meta_tmp:
                meta_tmp.write_text(json.dumps(record, indent=1))
    return out


def _write_npy(fv: FeatureVolume, f, shape, dtype, progress) -> None:
    """The .npy written with ordinary writes, never through a memory map: a full disk is then an OSError
    (ENOSPC), where a write into a mapped page beyond the disk's end is SIGBUS and kills the process."""
    np.lib.format.write_array_header_2_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(int(n) for n in shape)}
    )
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
        "cube_geometry": fv.cube_summary,
        "exported_from": str(fv.path.resolve()),
    }


# ---------------------------------------------------------------------------- info


def describe_store(path) -> dict:
    """Everything `seisfm features info` prints, JSON-able: grid, model, dims, completeness, size, cube, provenance."""
    fv = FeatureVolume.open(path, allow_partial=True)
    done, total = fv.progress()
    size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
    geo = fv.cube_summary
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
        "cube": {
            "source": geo.get("source"),
            "shape": geo.get("shape"),
            "fingerprint": fv.cube_fingerprint,
            "content_sha256": fv.cube_content,
        },
        "provenance": fv.provenance,
    }
