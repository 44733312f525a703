"""Feature extraction: a cube and an embedder in, a FeatureVolume (zarr store) out.

The loop walks the store's chunks one at a time: read the cube block under the chunk plus the
embedder's halo (mirrored at the cube edges), standardise it with the cube-wide NCS constants,
embed, mask dead traces, write, mark the chunk done. Memory is bounded by one chunk, whatever
the cube size. A store whose settings match is resumed chunk by chunk; a store is marked
complete only when every chunk is written. The CLI (`seisfm embed`) and the napari widget both
call :func:`extract_features`.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import progress as progress_
from .encoders.base import Embedder
from .encoders.registry import get_embedder
from .errors import SeisfmCancelled, SeisfmError
from .io.output import atomic_output
from .store.encoding import DTYPE_ALIASES, DTYPES, PCA_SAMPLE_VECTORS, pca_basis
from .store.grid import GridSpec, check_stride, chunk_counts, chunk_region, live_points
from .store.lock import StoreLock
from .store.volume import FeatureVolume, cube_content_hash, open_for_resume, store_state

CLIP = 3.0  # NCS recipe: unit variance per cube, amplitudes clipped at 3 std
PCA_SAMPLE_CHUNKS = 8  # chunks embedded to fit the PCA basis
CHUNK_BYTES = 256 * 2**20  # float32 embeddings of one chunk held in memory at most (ViT-sized chunks)
KEEP_BYTES = 512 * 2**20  # embeddings of the PCA-fit chunks kept to be written (not embedded twice)


def extract_features(
    cube,
    out,
    *,
    model: str | None = None,
    checkpoint=None,
    stride=4,
    pca: int | None = 64,
    dtype: str = "int8",
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    resume: bool = True,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    chunks: tuple[int, int, int] | None = None,
    embedder: Embedder | None = None,
    workers: int | None = None,
) -> FeatureVolume:
    """Embed every ``stride``-th sample of ``cube`` (a Cube or a path) into the store ``out``.

    ``pca``: reduce to this many dimensions when the embedder produces more (0/None: keep all, uncentred).
    The basis is fitted whatever the width: centring the vectors before they are scaled to unit length
    and quantised to int8 gave better maps on ``seisfm bench`` (dev seed 0, linear read-out: micro ViT
    flat spot 0.57 -> 0.80, packages 0.62 -> 0.69; attributes packages 0.67 -> 0.70; kNN unchanged).
    ``dtype``: int8 (default), float16 or float32 (aliases i8/f16/f32). ``resume``: continue a
    matching partial store; ``overwrite``: replace whatever store is at ``out``. ``progress(done,
    total)`` is called with chunk counts, ``done`` fractional within a chunk when the embedder works
    in batches (the ViTs: after each batch of forward passes, so a cube of one chunk still moves);
    ``cancel`` (a ``threading.Event`` or a callable) is checked between chunks and between those
    batches and raises :class:`SeisfmCancelled`, leaving a resumable store marked incomplete.
    ``embedder`` overrides ``model``/``checkpoint`` with a ready instance. ``workers``: chunks embedded
    at once in threads, for embedders that allow it (``parallel_blocks``: the attribute embedder, whose
    numpy/BLAS work releases the GIL); default one per idle CPU core (cores minus the load average), 1 to 4. The chunks embedded to fit
    the PCA basis are written as they are, not embedded twice.

    The whole run holds the store's writer lock (:class:`~napari_seisfm.store.lock.StoreLock`): a second
    writer, ``overwrite`` included, is refused while the first one lives.
    """
    if isinstance(cube, (str, Path)):  # a file: open it here and close it when done
        from .io import open_cube

        with open_cube(cube) as opened:
            return extract_features(
                opened, out, model=model, checkpoint=checkpoint, stride=stride, pca=pca, dtype=dtype, device=device,
                precision=precision, batch_size=batch_size, resume=resume, overwrite=overwrite, progress=progress,
                cancel=cancel, chunks=chunks, embedder=embedder, workers=workers,
            )  # fmt: skip
    out = Path(out)
    embedder, grid, wanted, out_dim = extraction_settings(
        cube, model, checkpoint, stride, pca, dtype, device, precision, batch_size, embedder
    )
    with StoreLock(out):
        return _extract_locked(
            cube,
            out,
            embedder,
            grid,
            wanted,
            out_dim,
            chunks,
            resume,
            overwrite,
            progress,
            cancel,
            basis_wanted=bool(pca),
            workers=workers,
        )


def sample_chunk(cube, grid: GridSpec, chunks, normalisation: dict, chunk_index, share: int, *, embedder: Embedder):
    """One PCA pick embedded, for the part of the PCA fit that runs on a worker while the store does not
    exist yet: ``(sample, chunk)``, its share of the sample (:func:`pca_sample`) and ``(vectors, live)``
    for the coordinator to write once the store exists (None above ``KEEP_BYTES / PCA_SAMPLE_CHUNKS``:
    then the chunk is embedded again by a chunk task rather than shipped)."""
    reader = _BlockReader(cube, grid, read_halo(embedder, cube.shape), normalisation)
    index = tuple(int(i) for i in chunk_index)
    region = chunk_region(index, chunks, grid.shape)
    vectors = embedder.embed_block(reader.block(region), grid.stride)
    keep = vectors.nbytes <= KEEP_BYTES // PCA_SAMPLE_CHUNKS
    return pca_sample(vectors, index, share), (vectors, live_points(cube.geometry.dead, grid, region)) if keep else None


def embed_chunks(cube, out, indices, *, embedder: Embedder) -> list[tuple[int, int, int]]:
    """Embed and write the data of the chunks ``indices`` of a created store, leaving
    their done flags to the caller. The flags are one zarr chunk, so one process (the coordinator) must own
    them; each data chunk is a file of its own, so any number of processes can write different chunks.
    A chunk cut off mid-write is never flagged, and is written again whole by whoever reruns it."""
    fv = FeatureVolume.open(out, allow_partial=True, mode="r+")
    if fv.model != embedder.card.id or int(fv._group.attrs.get("dim_in", embedder.dim)) != embedder.dim:
        raise SeisfmError(f"{out}: made by model {fv.model!r}, not {embedder.card.id!r}")
    fv.check_matches(cube.geometry.fingerprint(), what=f"{getattr(cube, 'path', None) or 'the cube'}")
    reader = _BlockReader(cube, fv.grid, read_halo(embedder, cube.shape), fv.normalisation)
    written = []
    for index in indices:
        index = tuple(int(i) for i in index)
        region = fv.chunk_region(index)
        vectors = embedder.embed_block(reader.block(region), fv.grid.stride)
        fv.write_chunk(index, vectors, live_points(cube.geometry.dead, fv.grid, region), mark_done=False)
        written.append(index)
    return written


def extraction_settings(cube, model, checkpoint, stride, pca, dtype, device, precision, batch_size, embedder):
    """The embedder, grid and store settings ``(embedder, grid, wanted, out_dim)`` of one extraction;
    ``wanted`` is what a store must hold to be resumed."""
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise SeisfmError(f"feature dtype must be one of i8, f16, f32 (or {', '.join(DTYPES)}), got {dtype!r}")
    if pca is not None and int(pca) < 0:
        raise SeisfmError(f"pca must be 0 (off) or a positive number of dimensions, got {pca}")
    if embedder is None:
        embedder = get_embedder(model, checkpoint=checkpoint, device=device, precision=precision, batch_size=batch_size)
    grid = GridSpec.for_cube(cube.shape, check_stride(cube.shape, stride, getattr(cube, "path", None) or "the cube"))
    out_dim = int(pca) if pca and embedder.dim > int(pca) else embedder.dim
    wanted = {
        "model": embedder.card.id,
        "stride": list(grid.stride),
        "grid_shape": list(grid.shape),
        "cube_fingerprint": cube.geometry.fingerprint(),
        "dim_in": embedder.dim,
        "dim": out_dim,
        "dtype": dtype,
        "checkpoint_sha256": embedder.checkpoint_sha256(),
        "pca": bool(pca),  # a basis fitted or not (not an attribute: read from the store's arrays)
    }
    return embedder, grid, wanted, out_dim


def _extract_locked(
    cube, out, embedder, grid, wanted, out_dim, chunks, resume, overwrite, progress, cancel, basis_wanted=True, workers=None
):
    fv, fitted = _prepare_locked(
        cube, out, embedder, grid, wanted, out_dim, chunks, resume, overwrite, progress, cancel, basis_wanted
    )
    if fv.complete:
        return FeatureVolume.open(out)
    done, total = fv.progress()
    for index, vectors in sorted(fitted.items()):  # the PCA fit's chunks first: progress never goes back
        if not fv.chunk_done(index):
            fv.write_chunk(index, vectors, live_points(cube.geometry.dead, grid, fv.chunk_region(index)))
            done += 1
    fitted.clear()
    progress_.report(progress, done, total)
    reader = _BlockReader(cube, grid, read_halo(embedder, cube.shape), fv.normalisation)
    todo = [(index, region) for index, region in fv.chunk_slices() if not fv.chunk_done(index)]
    n_workers = _workers(workers, embedder, len(todo))
    for index, region, vectors in _embedded(todo, embedder, reader, grid, n_workers, progress, cancel, out, done, total):
        fv.write_chunk(index, vectors, live_points(cube.geometry.dead, grid, region))
        done += 1
        progress_.report(progress, done, total)
    fv.mark_complete()
    return FeatureVolume.open(out)


def _prepare_locked(cube, out, embedder, grid, wanted, out_dim, chunks, resume, overwrite, progress, cancel, basis_wanted=True):
    """The store to fill, created or resumed, and ``{chunk index: vectors}`` embedded for its PCA fit."""
    plan = plan_store(cube, out, embedder, grid, wanted, out_dim, chunks, resume, overwrite)
    if isinstance(plan, FeatureVolume):
        if plan.complete:
            progress_.report(progress, *plan.progress())
        return plan, {}
    fitted = {}  # chunk index -> vectors embedded for the PCA fit, written instead of embedded again
    basis = None
    cache = _fit_cache(out, wanted, plan)
    if basis_wanted:  # centred (and rotated) even when nothing is cut: see extract_features
        basis = fit_pca(
            cube,
            embedder,
            grid,
            plan["normalisation"],
            out_dim,
            plan["chunks"],
            cancel,
            keep=fitted,
            progress=progress,
            cache=cache,
        )
    fv = FeatureVolume.create(out, pca=basis, **plan)
    shutil.rmtree(cache.parent, ignore_errors=True)  # the picks now live in the store
    return fv, fitted


def _fit_cache(out: Path, wanted: dict, plan: dict) -> Path:
    """Where the PCA fit keeps the sample chunks it has embedded (beside the store, which does not exist
    yet), so a run stopped during the fit resumes there; one folder per settings."""
    import hashlib
    import json

    key = json.dumps(
        {
            "wanted": wanted,
            "chunks": list(plan["chunks"]),
            "normalisation": plan["normalisation"],
            "content": plan.get("cube_content"),
        },
        sort_keys=True,
        default=str,
    )
    return out.with_name(out.name + ".pca-fit") / hashlib.sha256(key.encode()).hexdigest()[:16]


def plan_store(cube, out, embedder, grid, wanted, out_dim, chunks, resume, overwrite):
    """What to do with the store at ``out`` (its lock held by the caller; nothing is written): the partial
    or complete store to resume (its settings checked against ``wanted``), or the arguments of
    :meth:`FeatureVolume.create` for a new one, all but its PCA basis."""
    content = cube_content_hash(cube)
    state = store_state(out)
    if state == "half":  # killed while being created by an older version: nothing in it can be resumed
        overwrite = True
    elif state not in ("missing", "empty") and not overwrite:
        if not resume:
            raise SeisfmError(f"{out}: already exists; pass --overwrite to replace it (or allow resuming)")
        return open_for_resume(out, wanted, content)
    elif state == "other":
        raise SeisfmError(f"{out}: exists and is not a feature store; refusing to overwrite it")
    return {
        "grid": grid,
        "dim_in": embedder.dim,
        "dtype": wanted["dtype"],
        "model": embedder.card.id,
        "cube_fingerprint": wanted["cube_fingerprint"],
        "cube_content": content,
        "cube_summary": cube.geometry.summary(),
        "checkpoint_sha256": embedder.checkpoint_sha256(),
        "normalisation": estimate_normalisation(cube),
        "chunks": _chunks(chunks, embedder, grid),
        "overwrite": bool(overwrite or state == "empty"),
    }


def _workers(workers, embedder, n_chunks) -> int:
    if not getattr(embedder, "parallel_blocks", False):
        return 1
    if workers is None:  # the idle cores, at most 4: on a busy machine threads only add contention (measured: 1.3x slower)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
        workers = min(cpus - busy, 4)
    return max(1, min(int(workers), n_chunks))


def _embedded(todo, embedder, reader, grid, workers, progress, cancel, out, done, total):
    """``(index, region, vectors)`` for every chunk in ``todo``, in order. One worker: chunk after
    chunk. Several: blocks are read here (cube readers are not thread-safe) and embedded in threads, at
    most ``workers + 1`` in flight; BLAS is held to one thread meanwhile (the workers are the parallelism).
    Either way progress moves and cancel is heard within a chunk, at every step of the embedder (a stage
    of the attribute embedder, a batch of a ViT); chunks in flight when it stops are dropped unwritten."""
    if workers <= 1:
        for k, (index, region) in enumerate(todo):
            if progress_.cancelled(cancel):
                raise SeisfmCancelled(f"{out}: stopped after {done + k}/{total} chunks; run again to resume")
            with progress_.steps(_within_chunk(progress, cancel, done + k, total, out)):
                vectors = embedder.embed_block(reader.block(region), grid.stride)
            yield index, region, vectors
        return
    from concurrent.futures import ThreadPoolExecutor, wait

    from threadpoolctl import threadpool_limits

    fractions = {}  # chunk index -> fraction embedded, written by the worker threads

    def embed(index, block):
        def hook(s_done, s_total):
            if s_done is not None:
                fractions[index] = s_done / max(s_total, 1)
            if progress_.cancelled(cancel):
                raise SeisfmCancelled(f"{out}: stopped; run again to resume")

        with progress_.steps(hook):
            return embedder.embed_block(block, grid.stride)

    pool = ThreadPoolExecutor(workers)
    pending = []
    shown = float(done)
    try:
        with threadpool_limits(1):
            for k in range(len(todo)):
                if progress_.cancelled(cancel):
                    raise SeisfmCancelled(f"{out}: stopped after {done + k}/{total} chunks; run again to resume")
                while len(pending) <= workers and k + len(pending) < len(todo):
                    index, region = todo[k + len(pending)]
                    pending.append((index, region, pool.submit(embed, tuple(index), reader.block(region))))
                index, region, job = pending[0]
                while not wait([job], timeout=0.25).done:  # progress from this thread only, cancel within a chunk
                    if progress_.cancelled(cancel):
                        raise SeisfmCancelled(f"{out}: stopped after {done + k}/{total} chunks; run again to resume")
                    now = done + k + sum(min(f, 0.99) for i, f in list(fractions.items()))
                    if progress is not None and now > shown:
                        shown = now
                        progress(now, total)
                pending.pop(0)
                fractions.pop(tuple(index), None)
                yield index, region, job.result()
    finally:  # cancelled or failed: blocks not started are dropped; running ones stop at their next step
        pool.shutdown(wait=False, cancel_futures=True)


def repair_store(
    out,
    cube,
    *,
    checkpoint=None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    embedder: Embedder | None = None,
) -> list:
    """Recompute the damaged chunks of a store from its cube; returns what :meth:`FeatureVolume.verify` found.

    The same code path as extraction: the damaged chunks' files are removed and their done flags
    cleared, then the store is resumed with its own settings (model, stride, dtype, stored PCA basis and
    normalisation), so the repaired chunks get the bytes an uninterrupted run writes. ``cube`` must be
    the store's cube (fingerprint and sampled traces are checked).
    """
    if isinstance(cube, (str, Path)):
        from .io import open_cube

        with open_cube(cube) as opened:
            return repair_store(
                out,
                opened,
                checkpoint=checkpoint,
                device=device,
                precision=precision,
                batch_size=batch_size,
                progress=progress,
                cancel=cancel,
                embedder=embedder,
            )
    out = Path(out)
    with StoreLock(out):
        fv = FeatureVolume.open(out, allow_partial=True, mode="r+")
        fv.check_cube(cube, what=f"{getattr(cube, 'path', None) or 'the cube'}")
        bad = fv.verify()
        if bad:
            fv.clear_done([idx for idx, _ in bad])
        if bad or not fv.complete:
            extract_features(
                cube, out, model=fv.model, checkpoint=checkpoint, stride=fv.grid.stride,
                pca=fv.dim if fv.pca_components is not None else 0, dtype=fv.dtype, device=device,
                precision=precision, batch_size=batch_size, progress=progress, cancel=cancel, embedder=embedder,
            )  # fmt: skip
    return bad


# ---------------------------------------------------------------------------- pieces


def estimate_normalisation(cube, max_traces: int = 4000, seed: int = 0) -> dict:
    """NCS standardisation constants from a sample of live traces: mean, std, clip at 3 std.

    Whole inlines are read (the fast access path of every format), evenly spread over the cube,
    and up to ``max_traces`` live traces are drawn from them.
    """
    ni, nx, _ = cube.shape
    n_lines = int(np.clip(math.ceil(max_traces / max(nx, 1)), 1, min(ni, 32)))
    lines = np.unique(np.linspace(0, ni - 1, n_lines).round().astype(int))
    dead = cube.geometry.dead
    traces = []
    for i in lines:
        block = np.asarray(cube[int(i)], np.float64).reshape(nx, -1)
        live = np.isfinite(block).all(axis=1) & (np.abs(block).max(axis=1) > 0)
        if dead is not None:
            live &= ~np.asarray(dead, bool)[i]
        traces.append(block[live])
    sample = np.concatenate(traces) if traces else np.zeros((0, cube.shape[2]))
    if len(sample) > max_traces:
        sample = sample[np.random.default_rng(seed).choice(len(sample), max_traces, replace=False)]
    std = float(sample.std()) if sample.size else 0.0
    if not np.isfinite(std) or std <= 0:
        where = getattr(cube, "path", None) or "cube"
        raise SeisfmError(f"{where}: no live traces with signal to standardise (all zero, dead or non-finite)")
    return {
        "method": "unit-variance, clip 3 std",
        "mean": float(sample.mean()),
        "std": std,
        "clip": CLIP,
        "traces": int(len(sample)),
    }


def fit_pca(
    cube,
    embedder: Embedder,
    grid: GridSpec,
    normalisation: dict,
    dim: int,
    chunks,
    cancel=None,
    keep=None,
    progress=None,
    cache: Path | None = None,
):
    """PCA basis ``(mean, components)`` of the embeddings of a few chunks spread over the grid.
    ``keep``: a dict that receives the chunks' vectors by chunk index (up to ``KEEP_BYTES`` in all),
    so that extraction writes them instead of embedding them again. ``progress(done, total)`` counts the
    picks embedded so far in chunks of the store (they are its first chunks written). ``cache``: a folder
    where each pick is saved once embedded and read back by a rerun (a run stopped during the fit loses
    at most the pick in progress)."""
    reader = _BlockReader(cube, grid, read_halo(embedder, cube.shape), normalisation)
    rows = []
    total = int(np.prod(chunk_counts(grid.shape, chunks)))
    picks = pca_picks(grid, chunks)
    for k, (idx, share) in enumerate(picks.items()):
        if progress_.cancelled(cancel):
            raise SeisfmCancelled(_fit_stopped(k, len(picks), cache))
        region = chunk_region(idx, chunks, grid.shape)
        block_vectors = _cached_pick(cache, idx)
        if block_vectors is None:
            hook = _within_chunk(progress, cancel, k, total, _fit_stopped(k, len(picks), cache), fitting=True)
            with progress_.steps(hook):
                block_vectors = embedder.embed_block(reader.block(region), grid.stride)
            _cache_pick(cache, idx, block_vectors)
        if keep is not None and sum(a.nbytes for a in keep.values()) + block_vectors.nbytes <= KEEP_BYTES:
            keep[idx] = block_vectors
        rows.append(pca_sample(block_vectors, idx, share))
    return pca_basis(np.concatenate(rows).astype(np.float64), dim)


def _fit_stopped(k: int, n: int, cache) -> str:
    kept = f"{k} of {n} sample chunks kept" if cache is not None else "nothing was written"
    return f"stopped while fitting the PCA basis ({kept}); run again to resume"


def _pick_file(cache: Path, idx) -> Path:
    return cache / ("pick_" + "_".join(str(int(i)) for i in idx) + ".npy")


def _cached_pick(cache, idx):
    if cache is None or not _pick_file(cache, idx).is_file():
        return None
    try:
        return np.load(_pick_file(cache, idx), allow_pickle=False)
    except (OSError, ValueError):  # cut off mid-write: embedded again
        return None


def _cache_pick(cache, idx, vectors) -> None:
    """Best effort (a full disk only costs the resume): written whole, then renamed."""
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_output(_pick_file(cache, idx)) as tmp:
            np.save(tmp, vectors)
    except (OSError, SeisfmError):
        pass


def pca_picks(grid: GridSpec, chunks) -> dict[tuple[int, int, int], int]:
    """The chunks embedded to fit the PCA basis, ``PCA_SAMPLE_CHUNKS`` spread at random (seed 0) over the
    grid, each with its share of the ``PCA_SAMPLE_VECTORS`` sample: in proportion to its grid points, so a
    thin chunk at the cube's edge weighs no more than its size."""
    n_chunks = chunk_counts(grid.shape, chunks)
    all_idx = np.stack(np.meshgrid(*(np.arange(n) for n in n_chunks), indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(0)
    picks = [
        tuple(int(i) for i in idx)
        for idx in all_idx[rng.choice(len(all_idx), min(PCA_SAMPLE_CHUNKS, len(all_idx)), replace=False)]
    ]
    sizes = [int(np.prod([sl.stop - sl.start for sl in chunk_region(idx, chunks, grid.shape)])) for idx in picks]
    return {idx: -(-PCA_SAMPLE_VECTORS * size // sum(sizes)) for idx, size in zip(picks, sizes)}


def pca_sample(block_vectors: np.ndarray, chunk_index, share: int) -> np.ndarray:
    """One pick's part of the PCA sample: its finite vectors, at most ``share`` of them drawn with a seed of
    its own, so the picks can be embedded anywhere (Dask workers) in any order."""
    v = block_vectors.reshape(-1, block_vectors.shape[-1])
    v = v[np.isfinite(v).all(axis=1)]
    n = int(share)
    if len(v) > n:
        v = v[np.sort(np.random.default_rng([0, *chunk_index]).choice(len(v), n, replace=False))]
    return v


def read_halo(embedder: Embedder, shape) -> tuple[int, int, int]:
    """Context to read around a block: the embedder's halo, except none along a cube axis of one line
    (a 2-D section) when the embedder embeds sections natively (``native_sections``). Mirroring one
    line into ``2 * halo + 1`` identical pseudo-lines gives the same vectors at ~100x the work."""
    halo = tuple(int(h) for h in embedder.halo)
    if getattr(embedder, "native_sections", False):
        halo = tuple(0 if k < 2 and shape[k] == 1 else h for k, h in enumerate(halo))
    return halo


class _BlockReader:
    """Reads the standardised cube block under a grid region, with the halo mirrored at cube edges.

    Mirroring by index arithmetic (not padding the block) makes every block an exact window of
    the same infinitely mirrored cube, so results do not depend on how the grid is chunked.
    """

    def __init__(self, cube, grid: GridSpec, halo, normalisation: dict):
        self.cube, self.grid, self.halo = cube, grid, tuple(int(h) for h in halo)
        self.mean = float(normalisation.get("mean", 0.0))
        self.std = float(normalisation.get("std", 1.0))
        self.clip = float(normalisation.get("clip", CLIP))

    def block(self, region) -> np.ndarray:
        index = []
        for k, sl in enumerate(region):
            s, o, n, h = self.grid.stride[k], self.grid.origin[k], self.cube.shape[k], self.halo[k]
            start = o + s * sl.start
            stop = min(o + s * sl.stop, n)
            index.append(mirror(np.arange(start - h, stop + h), n))
        lo = [int(i.min()) for i in index]
        hi = [int(i.max()) + 1 for i in index]
        raw = np.asarray(self.cube[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], np.float32)
        if not all(len(i) == h - low and i[0] == low for i, low, h in zip(index, lo, hi)):  # mirrored at a cube edge
            raw = raw[np.ix_(*(i - low for i, low in zip(index, lo)))]
        raw = np.array(raw, np.float32, order="C")  # a copy of our own, standardised in place
        np.nan_to_num(raw, copy=False, nan=self.mean, posinf=self.mean, neginf=self.mean)
        raw -= np.float32(self.mean)
        raw /= np.float32(self.std)
        return np.clip(raw, -self.clip, self.clip, out=raw)


def mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Reflect indices into ``[0, n)`` without repeating the edge sample (numpy's "reflect")."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    m = np.abs(index) % period
    return np.where(m >= n, period - m, m)


def _chunks(chunks, embedder: Embedder, grid: GridSpec) -> tuple[int, int, int]:
    """Store chunk (in grid points): given, the embedder's preferred core, or big enough that the halo
    costs at most ~50% per axis (16..32 grid points)."""
    if chunks is not None:
        c = tuple(int(v) for v in (chunks if not np.isscalar(chunks) else (chunks,) * 3))
        if len(c) != 3 or min(c) < 1:
            raise SeisfmError(f"chunks must be three positive integers, got {chunks!r}")
        return c
    preferred = getattr(embedder, "preferred_core", None)  # ViT embedders: cores that waste no tokens
    if preferred is not None:
        c = [max(1, int(p) // s) for p, s in zip(preferred(), grid.stride)]
        while c[0] > 1 and np.prod(c) * embedder.dim * 4 > CHUNK_BYTES:  # bound memory on the untiled axis
            c[0] = -(-c[0] // 2)
        return tuple(c)
    return tuple(int(np.clip(math.ceil(4 * h / s), 16, 32)) for h, s in zip(embedder.halo, grid.stride))


def _within_chunk(progress, cancel, done, total, out, fitting=False):
    """The step hook for one chunk (:func:`napari_seisfm.progress.steps`): progress as a fraction of the
    chunk (``done + steps/steps_total``, never backwards) and cancel at every step (the chunk is not
    written, so the store stays resumable and incomplete). ``fitting``: a chunk embedded to fit the PCA
    basis, before the store exists (``out`` is then the message to stop with)."""
    shown = [0.0]

    def hook(s_done, s_total):
        frac = shown[0] if s_done is None else min(max(s_done / max(s_total, 1), shown[0]), 1.0)
        if progress is not None and frac > shown[0] and frac < 1.0:
            shown[0] = frac
            progress(done + frac, total)
        if progress_.cancelled(cancel):
            if fitting:  # ``out`` is then the whole message
                raise SeisfmCancelled(out)
            raise SeisfmCancelled(f"{out}: stopped after {int(done)}/{total} chunks; run again to resume")

    return hook
