"""FeatureVolume: embeddings on a strided grid of a cube, in a chunked zarr store.

Layout (format ``seisfm-features``, version 1; docs/feature-store.md says the same):

- ``embeddings``: ``(gi, gx, gt, dim)``, int8, float16 or float32, chunked over the grid.
  Vectors are stored L2-normalised (after the optional PCA projection), so a dot product is a
  cosine; int8 stores hold ``round(v * quant_scale)``.
- ``valid``: ``(gi, gx, gt)`` bool; False for dead traces and non-finite embeddings.
- ``done``: one bool per chunk of the grid, for resuming an interrupted extraction.
- ``pca_mean`` ``(dim_in,)`` and ``pca_components`` ``(dim, dim_in)``, when reduced.
- attrs: grid shape/stride/origin, model id, checkpoint hash, cube fingerprint and geometry
  summary, normalisation, dtype, ``complete``.

A grid point ``(a, b, c)`` sits at cube index ``origin + stride * (a, b, c)``. The store is only
marked complete after every chunk has been written; readers refuse partial stores unless asked.

Reliability (docs/reliability.md): one writer at a time (:class:`~napari_seisfm.store.lock.StoreLock`, a ``<store>.lock`` file
beside the store); a new store is built in ``<store>.creating`` and renamed into place, so a store at
its path always has every array; damaged chunks are read as invalid vectors with a warning, never as
zeros that look valid (:meth:`FeatureVolume.load`, :meth:`FeatureVolume.verify`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import SeisfmError
from ..io.output import write_failed
from .encoding import DTYPES, basis_hash, decode_vectors, encode_vectors
from .grid import GridSpec, chunk_counts, chunk_region
from .lock import StoreLock

FORMAT = "seisfm-features"
VERSION = 1
REQUIRED_ATTRS = ("grid_shape", "stride", "origin", "chunks", "dim", "dtype", "model", "cube_fingerprint")
ARRAYS = ("embeddings", "valid", "done")
CONTENT_TRACES = 4  # per axis: the content hash reads 4 x 4 traces


class StoreWarning(UserWarning):
    """A feature store was read with damaged chunks; their grid points were made invalid."""


def store_state(path) -> str:
    """What is at ``path``: "missing", "empty" (directory), "store", "half" (a feature store killed
    while being created by an older version: attributes or arrays missing) or "other"."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir() and not any(path.iterdir()):
        return "empty"
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return "other"
    attrs = meta.get("attributes", {}) if isinstance(meta, dict) else {}
    if not isinstance(attrs, dict) or attrs.get("format") != FORMAT:
        return "other"
    if any(k not in attrs for k in REQUIRED_ATTRS) or not all((path / a / "zarr.json").is_file() for a in ARRAYS):
        return "half"
    return "store"


def cube_content_hash(cube) -> str:
    """Hash of a few traces at fixed positions (4 x 4 evenly spread, float32 bytes): tells two cubes of
    the same geometry apart at the cost of 16 trace reads."""
    ni, nx = cube.shape[:2]
    h = hashlib.sha256(np.asarray(cube.shape, np.int64).tobytes())
    for i in np.unique(np.linspace(0, ni - 1, CONTENT_TRACES).round().astype(int)):
        for j in np.unique(np.linspace(0, nx - 1, CONTENT_TRACES).round().astype(int)):
            h.update(np.ascontiguousarray(cube[int(i), int(j), :], np.float32).tobytes())
    return h.hexdigest()[:16]


def _absolute_source(geometry: dict | None) -> dict:
    """The cube summary with its ``source`` file made absolute (resolved), so the cube is found from any
    working directory later (a library match opening its cube); a source that is no file (``array``) stays."""
    geometry = dict(geometry or {})
    source = geometry.get("source")
    if source and Path(source).exists():
        geometry["source"] = str(Path(source).resolve())
    return geometry


class FeatureVolume:
    """A feature store on disk. Create it with :meth:`create`, open it with :meth:`open`."""

    def __init__(self, group, path: Path):
        self._group = group
        self.path = Path(path)
        try:
            self._read_layout(group)
        except SeisfmError:
            raise
        except Exception as exc:  # KeyError for a missing attribute or array, zarr's own for garbled metadata  # noqa: BLE001
            if isinstance(exc, KeyError) and exc.args:
                what = repr(exc.args[0])
            else:  # the array being opened, not the error's class (it used to say 'JSONDecodeError')
                where = f"array {self._opening!r}" if getattr(self, "_opening", None) else "metadata"
                what = f"{where}: {exc.__class__.__name__}"
            raise SeisfmError(
                f"{self.path}: damaged or half-created feature store (missing or unreadable {what}); "
                "run `seisfm embed` again (resume or --overwrite replaces it)"
            ) from None

    def _read_layout(self, group) -> None:
        a = group.attrs
        self.grid = GridSpec(tuple(a["grid_shape"]), tuple(a["stride"]), tuple(a["origin"]))
        self.dim = int(a["dim"])
        self.dtype = str(a["dtype"])
        self.model = str(a["model"])
        self.checkpoint_sha256 = a.get("checkpoint_sha256")
        self.cube_fingerprint = str(a["cube_fingerprint"])
        self.cube_content = a.get("cube_content_sha256")  # absent in stores written before it existed
        self.cube_summary = dict(a.get("cube_geometry", {}))  # Geometry.summary() of the cube
        self.normalisation = dict(a.get("normalisation", {}))
        self.quant_scale = float(a.get("quant_scale", 1.0))
        self.chunks = tuple(a["chunks"])
        self.provenance = dict(a.get("provenance") or {})  # imported stores: source file, hash, layout
        # every chunk is written, even all-zero ones, so a missing chunk file always means a lost chunk
        self.embeddings = self._array(group, "embeddings").with_config({"write_empty_chunks": True})
        self.valid = self._array(group, "valid").with_config({"write_empty_chunks": True})
        self._done = self._array(group, "done")
        self.pca_mean, self.pca_components = self._read_basis(group)
        self._opening = None

    def _array(self, group, name):
        self._opening = name  # named in the error when its metadata is garbled
        return group[name]

    def _read_basis(self, group):
        """The PCA basis ``(mean, components)`` or ``(None, None)``, checked: a lost chunk reads as zeros in zarr,
        which would silently project every vector onto nothing, so each chunk file must exist, the shapes fit
        ``dim``/``dim_in``, the values be finite and (stores that record it) the hash match."""
        a = group.attrs
        dim_in = int(a["dim_in"]) if a.get("dim_in") is not None else None  # absent: taken from the basis
        names = []
        for name in ("pca_mean", "pca_components"):
            self._opening = name
            if name in group:
                names.append(name)
        if not names:
            if dim_in is not None and dim_in != self.dim:
                self._damaged_basis(f"{dim_in}-d embeddings reduced to {self.dim} but no basis arrays")
            return None, None
        if len(names) == 1:
            self._damaged_basis(f"{'pca_mean' if names == ['pca_components'] else 'pca_components'} missing")
        arrays = {}
        for name in names:
            array = self._array(group, name)
            lost = self._missing_chunk(array)
            if lost:
                self._damaged_basis(f"{name} chunk {lost} missing")
            try:
                arrays[name] = np.asarray(array[...], np.float32)
            except Exception as exc:  # garbled bytes, checksum mismatch: the codec's own error type  # noqa: BLE001
                self._damaged_basis(f"{name} {_chunk_error(exc)}")
        mean, components = arrays["pca_mean"], arrays["pca_components"]
        dim_in = dim_in if dim_in is not None else (components.shape[-1] if components.ndim == 2 else -1)
        if components.shape != (self.dim, dim_in) or mean.shape != (dim_in,):
            self._damaged_basis(f"shapes {components.shape} and {mean.shape}, expected ({self.dim}, {dim_in}) and ({dim_in},)")
        if not (np.isfinite(components).all() and np.isfinite(mean).all()):
            self._damaged_basis("non-finite values")
        if not np.any(components):
            self._damaged_basis("all-zero components")
        recorded = a.get("pca_sha256")
        if recorded is not None and recorded != basis_hash(mean, components):
            self._damaged_basis("its values differ from those recorded at creation")
        return mean, components

    def _damaged_basis(self, what: str):
        rerun = (
            "`seisfm features import ... --overwrite`"
            if self.provenance.get("imported_from")
            else "`seisfm embed ... --overwrite`"
        )
        raise SeisfmError(
            f"{self.path}: damaged PCA basis ({what}); every vector depends on it, so the store cannot be "
            f"repaired in place: rewrite it with {rerun}"
        )

    def _missing_chunk(self, array):
        """The first chunk of ``array`` whose file is gone (zarr would read it as fill values), or None."""
        try:
            grid = array.cdata_shape
            for idx in itertools.product(*(range(n) for n in grid)):
                if not (self.path / array.basename / array.metadata.encode_chunk_key(idx)).is_file():
                    return idx
        except Exception:  # not a local directory store: only reading can tell  # noqa: BLE001
            return None
        return None

    @property
    def checksums(self) -> bool:
        """Whether the chunks carry CRC-32C checksums (stores written since they were added); they are
        verified on every read, so :meth:`verify` (`seisfm check`) finds any flipped bit."""
        try:
            return any(getattr(c, "to_dict", lambda: {})().get("name") == "crc32c" for c in self.embeddings.compressors)
        except Exception:  # noqa: BLE001
            return False

    # ---------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        path,
        *,
        grid: GridSpec,
        dim_in: int,
        dtype: str = "int8",
        model: str,
        cube_fingerprint: str,
        cube_content: str | None = None,
        cube_summary: dict | None = None,
        checkpoint_sha256: str | None = None,
        normalisation: dict | None = None,
        pca: tuple[np.ndarray, np.ndarray] | None = None,
        quant_scale: float | None = None,
        chunks: tuple[int, int, int] = (16, 16, 16),
        overwrite: bool = False,
        provenance: dict | None = None,
    ) -> FeatureVolume:
        """Start a new store; with ``overwrite=False`` an existing path is an error.

        Built in ``<path>.creating`` and renamed into place under the store lock, so a kill at any moment
        leaves either no store or one with every array (all chunks not done), never a store without arrays.
        """
        import zarr

        path = Path(path)
        if dtype not in DTYPES:
            raise SeisfmError(f"feature dtype must be one of {DTYPES}, got {dtype!r}")
        dim = dim_in
        if pca is not None:
            mean, components = (np.asarray(x, np.float32) for x in pca)
            if components.ndim != 2 or components.shape[1] != dim_in or mean.shape != (dim_in,):
                raise SeisfmError(f"PCA basis {components.shape} does not fit {dim_in}-d embeddings")
            dim = components.shape[0]
        if dtype == "int8" and not quant_scale:
            quant_scale = 127.0  # unit vectors: every component lies in [-1, 1]
        chunks = tuple(min(c, n) for c, n in zip(chunks, grid.shape))
        with StoreLock(path):
            if path.exists() and not overwrite:
                raise SeisfmError(f"{path}: already exists (pass overwrite/--overwrite, or resume)")
            tmp = path.with_name(path.name + ".creating")
            _remove(tmp)  # left by a run killed while creating
            try:
                group = zarr.open_group(str(tmp), mode="w")
                group.attrs.update(
                    {
                        "format": FORMAT,
                        "version": VERSION,
                        "complete": False,
                        "grid_shape": list(grid.shape),
                        "stride": list(grid.stride),
                        "origin": list(grid.origin),
                        "chunks": list(chunks),
                        "dim": dim,
                        "dim_in": dim_in,
                        "dtype": dtype,
                        "model": model,
                        "checkpoint_sha256": checkpoint_sha256,
                        "cube_fingerprint": cube_fingerprint,
                        "cube_content_sha256": cube_content,
                        "cube_geometry": _absolute_source(cube_summary),
                        "normalisation": normalisation or {},
                        "quant_scale": float(quant_scale or 1.0),
                        "normalized": True,
                        "every_chunk_written": True,  # a missing chunk file is a lost chunk
                        "checksums": "crc32c",  # every chunk ends in a CRC-32C of its compressed bytes, checked on read
                        **({"pca_sha256": basis_hash(mean, components)} if pca is not None else {}),
                        **({"provenance": provenance} if provenance else {}),
                    }
                )
                group.create_array(
                    "embeddings",
                    shape=(*grid.shape, dim),
                    chunks=(*chunks, dim),
                    dtype=dtype,
                    fill_value=0,
                    compressors=_compressors(),
                )
                group.create_array(
                    "valid", shape=grid.shape, chunks=chunks, dtype=bool, fill_value=False, compressors=_compressors()
                )
                n_chunks = chunk_counts(grid.shape, chunks)
                group.create_array(
                    "done", shape=n_chunks, chunks=n_chunks, dtype=bool, fill_value=False, compressors=_compressors()
                )
                if pca is not None:
                    group.create_array("pca_mean", data=mean, compressors=_compressors())
                    group.create_array("pca_components", data=components, compressors=_compressors())
            except OSError as exc:  # a full or read-only disk: no half-built store left behind
                _remove(tmp)
                raise write_failed(path, exc) from None
            if path.exists():  # overwrite: move the old store aside in one step, then delete it
                old = path.with_name(path.name + ".replaced")
                _remove(old)
                os.rename(path, old)
                _remove(old)
            os.rename(tmp, path)
            return cls(zarr.open_group(str(path), mode="r+"), path)

    @classmethod
    def open(cls, path, *, allow_partial: bool = False, mode: str = "r") -> FeatureVolume:
        import zarr

        path = Path(path)
        if not path.exists():
            raise SeisfmError(f"{path}: no such feature store")
        try:
            group = zarr.open_group(str(path), mode=mode)
            fmt = group.attrs.get("format")
        except Exception as exc:  # zarr raises many types for non-stores  # noqa: BLE001
            raise SeisfmError(f"{path}: not a feature store ({exc.__class__.__name__})") from None
        if fmt != FORMAT:
            raise SeisfmError(f"{path}: not a napari-seisfm feature store")
        if int(group.attrs.get("version", 0) or 0) > VERSION:
            raise SeisfmError(f"{path}: feature store version {group.attrs['version']} is newer than this napari-seisfm")
        fv = cls(group, path)
        if not allow_partial and not fv.complete:
            done, total = fv.progress()
            raise SeisfmError(
                f"{path}: extraction incomplete ({done}/{total} chunks); run the extraction again to resume it (Extract dock or `seisfm embed`)"
            )
        return fv

    # ---------------------------------------------------------------- state
    @property
    def complete(self) -> bool:
        return bool(self._group.attrs.get("complete", False))

    def progress(self) -> tuple[int, int]:
        done = np.asarray(self._done[...])
        return int(done.sum()), int(done.size)

    def chunk_slices(self) -> Iterator[tuple[tuple[int, int, int], tuple[slice, slice, slice]]]:
        """Every chunk of the grid, as (chunk index, grid slices), in storage order."""
        for idx in itertools.product(*(range(n) for n in self._done.shape)):
            yield idx, self.chunk_region(idx)

    def chunk_region(self, chunk_index) -> tuple[slice, slice, slice]:
        return chunk_region(chunk_index, self.chunks, self.grid.shape)

    def chunk_done(self, chunk_index) -> bool:
        return bool(self._done[tuple(chunk_index)])

    def write_chunk(self, chunk_index, vectors: np.ndarray, valid: np.ndarray | None = None, *, mark_done: bool = True) -> None:
        try:
            self._write_chunk(chunk_index, vectors, valid, mark_done)
        except OSError as exc:  # a full disk: the chunk is not marked done, so a resumed run writes it again
            raise write_failed(self.path, exc) from None

    def _write_chunk(self, chunk_index, vectors, valid, mark_done) -> None:
        """Store raw float embeddings ``(a, b, c, dim_in)`` for one chunk, then mark it done (``mark_done=False``:
        leave the flag to the process that owns the flags, see :meth:`mark_done`)."""
        sl = self.chunk_region(chunk_index)
        expect = tuple(s.stop - s.start for s in sl)
        if vectors.shape[:3] != expect:
            raise ValueError(f"chunk {chunk_index} expects {expect} grid points, got {vectors.shape[:3]}")
        stored, ok = self.encode(vectors)
        if valid is not None:
            ok &= valid
        stored[~ok] = 0
        self.embeddings[sl] = stored
        self.valid[sl] = ok
        if mark_done:
            self._done[tuple(chunk_index)] = True  # only after the data is written

    def mark_done(self, chunk_indices) -> None:
        """Flag chunks written by other processes (:func:`~napari_seisfm.extract.embed_chunks`) as done.
        The flags are one zarr chunk: only one process may call this for a store at a time (its lock holder)."""
        done = np.asarray(self._done[...], bool)
        for index in chunk_indices:
            done[tuple(int(i) for i in index)] = True
        try:
            self._done[...] = done
        except OSError as exc:
            raise write_failed(self.path, exc) from None

    def mark_complete(self) -> None:
        done, total = self.progress()
        if done != total:
            raise SeisfmError(f"{self.path}: cannot mark complete, {total - done} chunks missing")
        try:
            self._group.attrs["complete"] = True
        except OSError as exc:
            raise write_failed(self.path, exc) from None

    # ---------------------------------------------------------------- vectors
    def encode(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw embeddings -> (stored values, finite mask): PCA, L2 normalisation, quantisation."""
        return encode_vectors(vectors, self.dtype, self.quant_scale, self.pca_mean, self.pca_components)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values -> float32 unit vectors (approximately unit for int8)."""
        return decode_vectors(stored, self.dtype, self.quant_scale)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Raw embeddings (e.g. of a new click computed on the fly) into the stored space, float32."""
        stored, _ = self.encode(vectors)
        return self.decode(stored)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All vectors as a C-contiguous ``(N, dim)`` array in the stored dtype, and the ``(N,)`` valid mask.

        N runs over the grid in (inline, crossline, time) order. This is what search works on;
        an int8 256^3 x 64 grid is 1.07 GB. Read chunk by chunk: a missing, unreadable or non-finite
        chunk makes its grid points invalid (with a :class:`StoreWarning` saying how many) instead of
        reading as zero vectors or failing the whole read.
        """
        vectors = np.zeros((*self.grid.shape, self.dim), self.dtype)
        valid = np.zeros(self.grid.shape, bool)
        lost = bad = 0
        for _, sl, v, ok, problems, n_lost in self.scan():
            if v is not None:
                vectors[sl] = v
            if ok is not None:
                valid[sl] = ok
            lost += n_lost
            bad += bool(problems)
        if lost:
            warnings.warn(
                f"{self.path}: {lost} grid points in {bad} damaged chunks (missing, unreadable or non-finite) are "
                f"treated as invalid; `seisfm check {self.path} --repair --cube CUBE` recomputes them",
                StoreWarning,
                stacklevel=2,
            )
        return vectors.reshape(-1, self.dim), valid.reshape(-1)

    def scan(self):
        """Read every chunk: yields ``(chunk index, grid slices, vectors, valid, problems, lost points)``.

        ``vectors``/``valid`` are what can be trusted (vectors zeroed and valid False where the chunk is
        damaged; None when nothing could be read), ``problems`` one short phrase per fault. One chunk per
        read, so a garbled chunk fails alone (no half-finished concurrent reads).
        """
        complete = self.complete
        every_chunk = bool(self._group.attrs.get("every_chunk_written", False))
        try:
            done = np.asarray(self._done[...], bool)
        except Exception as exc:  # noqa: BLE001
            done, done_error = None, exc.__class__.__name__
        for idx, sl in self.chunk_slices():
            problems = []
            n = int(np.prod([s.stop - s.start for s in sl]))
            if done is not None and not done[idx] and not complete:  # not (fully) written yet: resuming rewrites it
                yield idx, sl, None, np.zeros([s.stop - s.start for s in sl], bool), [], 0
                continue
            v, v_err = self._read(self.embeddings, sl, (*idx, 0))
            ok, ok_err = self._read(self.valid, sl, idx)
            if done is None:
                problems.append(f"done flags unreadable ({done_error})")
            elif not done[idx] and complete:
                problems.append("marked complete but this chunk is not done")
            lost = 0
            if ok_err:
                problems.append(f"valid {ok_err}")
                lost = n if ok_err != "missing" or v_err != "missing" else 0
                ok = None
            if v_err:
                problems.append(f"embeddings {v_err}")
                lost = max(lost, n if ok is None else int(ok.sum()))
                v = None
            elif self.dtype != "int8":
                finite = np.isfinite(v).all(axis=-1)
                if not finite.all():
                    problems.append(f"embeddings non-finite at {int((~finite).sum())} grid points")
                    lost = max(lost, int(((~finite) & (ok if ok is not None else True)).sum()))
                    v = np.where(finite[..., None], v, 0).astype(v.dtype)
                    ok = finite & ok if ok is not None else None
            if v_err == ok_err == "missing" and not every_chunk:  # older stores skipped all-invalid chunks
                problems, lost = [i for i in problems if not i.startswith(("valid", "embeddings"))], 0
            if v is None and ok is not None:
                ok = np.zeros_like(ok)
            if ok is None and v is not None:
                v = None  # nothing says which vectors are valid
            yield idx, sl, v, ok, problems, (lost if problems else 0)

    def _read(self, array, sl, chunk_coords):
        """One chunk of ``array``: (data, None) or (None, "missing" / "unreadable (...)")."""
        try:
            key = array.metadata.encode_chunk_key(tuple(int(c) for c in chunk_coords))
            if not (self.path / array.basename / key).is_file():
                return None, "missing"
        except Exception:  # not a local directory store: only the read can tell  # noqa: BLE001
            pass
        try:
            data = np.asarray(array[sl])
        except Exception as exc:  # truncated or garbled bytes: the codec's own error type  # noqa: BLE001
            return None, _chunk_error(exc)
        return data, None

    def verify(self) -> list[tuple[tuple[int, int, int], str]]:
        """Every damaged chunk as ``(chunk index, "problem; problem")``; empty for a sound store."""
        return [(idx, "; ".join(p)) for idx, _, _, _, p, _ in self.scan() if p]

    def clear_done(self, chunk_indices) -> None:
        """Forget chunks (files removed, not done, store not complete): a resumed extraction rewrites them.
        Callers hold the :class:`StoreLock`."""
        try:
            done = np.asarray(self._done[...], bool)
        except Exception:  # the flags themselves are damaged: redo everything  # noqa: BLE001
            done = np.ones(self._done.shape, bool)
            chunk_indices = [idx for idx, _ in self.chunk_slices()]
        for idx in chunk_indices:
            done[tuple(idx)] = False
            for array, coords in ((self.embeddings, (*idx, 0)), (self.valid, tuple(idx))):
                try:  # a garbled file is never read again, even by a partial-chunk write  # noqa: SIM105
                    (self.path / array.basename / array.metadata.encode_chunk_key(coords)).unlink(missing_ok=True)
                except OSError:
                    pass
        self._group.attrs["complete"] = False
        self._done[...] = done

    # ---------------------------------------------------------------- checks
    def check_matches(self, fingerprint: str, what: str = "the cube", content: str | None = None) -> None:
        """Refuse another cube: its geometry fingerprint, and its sampled traces when both hashes are known."""
        geo = self.cube_summary
        if fingerprint != self.cube_fingerprint:
            raise SeisfmError(
                f"{self.path}: feature volume was extracted from another cube ({geo.get('source', '?')}, "
                f"shape {geo.get('shape', '?')}); it does not match {what}"
            )
        if content is not None and self.cube_content and content != self.cube_content:
            raise SeisfmError(
                f"{self.path}: feature volume was extracted from another cube with the same geometry "
                f"({geo.get('source', '?')}: sampled traces differ); it does not match {what}"
            )

    def check_cube(self, cube, what: str = "the cube") -> None:
        """:meth:`check_matches` against an open Cube (reads 16 traces when the store has a content hash)."""
        content = cube_content_hash(cube) if self.cube_content else None
        self.check_matches(cube.geometry.fingerprint(), what, content)

    def __repr__(self) -> str:
        state = "complete" if self.complete else "partial"
        return f"FeatureVolume({self.path}, grid={self.grid.shape}, stride={self.grid.stride}, dim={self.dim}, {self.dtype}, {self.model}, {state})"


def _compressors():
    """zstd (zarr's default) followed by a CRC-32C of the compressed bytes: a flipped bit anywhere in a chunk
    file fails the read instead of decoding to other values (benchmarks/bench_checksums.py: the cost)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return (ZstdCodec(level=0, checksum=False), Crc32cCodec())


def _chunk_error(exc: BaseException) -> str:
    """A short phrase for a chunk that failed to decode."""
    if "checksum" in str(exc).lower():
        return "unreadable (CRC-32C checksum mismatch)"
    return f"unreadable ({exc.__class__.__name__})"


def open_for_resume(out: Path, wanted: dict, content: str | None = None) -> FeatureVolume:
    """The partial or complete store at ``out``, opened to be written, refused when its settings differ from
    ``wanted`` (what `embed` or `features import` would write) or it holds another cube's vectors (``content``)."""
    fv = FeatureVolume.open(out, allow_partial=True, mode="r+")
    attrs = fv._group.attrs
    diff = [f"{k} {attrs.get(k)!r} != {v!r}" for k, v in wanted.items() if k != "pca" and _norm(attrs.get(k)) != _norm(v)]
    if "pca" in wanted and wanted["pca"] != (fv.pca_components is not None):
        diff.append(
            f"PCA {'on' if fv.pca_components is not None else 'off'} != {'on' if wanted['pca'] else 'off'} (--pca 0 is off)"
        )
    if content is not None and fv.cube_content and fv.cube_content != content:
        diff.append(f"cube_content_sha256 {fv.cube_content!r} != {content!r} (another cube with the same geometry)")
    if diff:
        raise SeisfmError(f"{out}: existing store has other settings ({'; '.join(diff)}); pass --overwrite to replace it")
    return fv


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
