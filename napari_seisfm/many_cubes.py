"""Many cubes, one command: every cube given (files or folders) into its own feature store, on a Dask cluster.

On Dask the work is split per cube *and* per chunk of its store, so one big cube uses the whole cluster.
This process, the coordinator, holds each store's writer lock from start to end and is the only one to
write its metadata and done flags; the workers only read cubes and write chunk data, each chunk a file
of its own:

1. a *plan* task per cube looks at its store (read-only): resume it (the chunks not flagged yet), or
   create it, with the normalisation estimated there;
2. a new store's PCA basis: its 8 sample chunks embedded in parallel, one *sample* task each
   (:func:`~napari_seisfm.extract.sample_chunk`); the coordinator fits the basis, creates the store and
   writes those chunks from the vectors shipped back (up to 64 MB each; bigger ones are embedded again);
3. one *chunk* task per chunk to do (:func:`~napari_seisfm.extract.embed_chunks`) embeds and writes its
   data; the coordinator flags the chunk when the task has finished and marks the store complete when
   the last one is flagged. Each worker thread keeps the cube open and the embedder loaded between its tasks.

What long many-cube runs meet: a worker lost mid-chunk leaves that chunk unflagged and the scheduler runs its
task again on another worker, which writes it whole (same bytes); failures are retried ``retries`` times; a
cube that fails is named at the end while the others finish; an interrupted run leaves resumable stores,
and a rerun skips the flagged chunks and writes nothing to complete stores. Stores come out byte-identical
to single-process runs with one BLAS thread, as Dask's workers have (tested, with a worker SIGKILLed
mid-run). Without ``distributed`` installed, or with ``scheduler="none"``, the cubes run one after the other
in this process (``extract_features``, its chunks in threads).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SeisfmError
from .io import SUFFIXES


@dataclass
class CubeResult:
    cube: str
    store: str
    chunks: int
    seconds: float
    embedded: int | None = None  # on Dask: chunks embedded by this run's chunk tasks (a rerun: only those not done)
    flagged: list | None = None  # on Dask: the chunks this run flagged done, each once


def list_cubes(inputs) -> list[Path]:
    """Cube files from a list of files and folders (a folder: its cubes, sorted, not recursive)."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not found:
                raise SeisfmError(f"{p}: no cubes in this folder ({', '.join(SUFFIXES)})")
            out += found
        elif not p.exists():
            raise SeisfmError(f"{p}: no such file or folder")
        else:
            out.append(p)
    stems = [p.stem for p in out]
    twins = sorted({s for s in stems if stems.count(s) > 1})
    if twins:
        raise SeisfmError(f"two cubes would write the same store ({', '.join(twins)}.zarr); rename one or run them separately")
    return out


def store_for(cube: Path, out_dir: Path) -> Path:
    return Path(out_dir) / f"{Path(cube).stem}.zarr"


EMBEDDER_OPTIONS = ("model", "checkpoint", "device", "precision", "batch_size")


def _embed_one(cube: str, out: str, options: dict) -> CubeResult:
    """One cube into its store in this process (resumes a partial one)."""
    from .extract import extract_features

    t0 = time.perf_counter()
    fv = extract_features(cube, out, **options)
    return CubeResult(cube, out, fv.progress()[1], time.perf_counter() - t0)


def _option(options: dict, name: str):
    """An extraction option as given, else ``extract_features``' default (one source of defaults)."""
    import inspect

    from .extract import extract_features

    return options[name] if name in options else inspect.signature(extract_features).parameters[name].default


def _plan_task(cube: str, out: str, options: dict) -> dict:
    """Worker side of step 1 (read-only: the coordinator holds the lock): ``{"todo": chunks}`` to resume a
    store, or ``{"create": FeatureVolume.create arguments, "picks": PCA chunks, "dim": PCA dims or None}``."""
    from .extract import extraction_settings, pca_picks, plan_store
    from .store.volume import FeatureVolume

    c = _worker_cube(cube)
    pca = _option(options, "pca")
    embedder, grid, wanted, out_dim = extraction_settings(
        c, None, None, _option(options, "stride"), pca, _option(options, "dtype"), None, None, None, _worker_embedder(options)
    )
    plan = plan_store(
        c,
        out,
        embedder,
        grid,
        wanted,
        out_dim,
        _option(options, "chunks"),
        _option(options, "resume"),
        _option(options, "overwrite"),
    )
    if isinstance(plan, FeatureVolume):
        return {"todo": [idx for idx, _ in plan.chunk_slices() if not plan.chunk_done(idx)]}
    picks = list(pca_picks(grid, plan["chunks"]).items()) if pca else []
    return {"create": plan, "picks": picks, "dim": out_dim if pca else None}


def _sample_task(cube: str, create: dict, index, share: int, options: dict):
    """Worker side of step 2: one PCA pick's sample vectors."""
    from .extract import sample_chunk

    return sample_chunk(
        _worker_cube(cube),
        create["grid"],
        create["chunks"],
        create["normalisation"],
        index,
        share,
        embedder=_worker_embedder(options),
    )


def _chunk_task(cube: str, out: str, indices: list, options: dict) -> list:
    """Worker side of step 3: some chunks' data written, their flags left to the coordinator."""
    from .extract import embed_chunks

    return embed_chunks(_worker_cube(cube), out, indices, embedder=_worker_embedder(options))


# Kept between a worker's tasks, per thread (cube readers are not thread-safe, and a worker of a remote cluster
# may run several tasks at once): open cubes (a SEG-Y's headers are scanned once) and embedders (a ViT's weights
# are loaded once).
_WORKER = threading.local()


def _worker_cube(path: str):
    from .io import open_cube

    cubes = _WORKER.__dict__.setdefault("cubes", {})
    key = (path, Path(path).stat().st_mtime_ns)
    if key not in cubes:
        while len(cubes) >= 2:  # a worker runs one cube at a time, mostly: keep two open at most
            old = cubes.pop(next(iter(cubes)))
            getattr(old, "close", lambda: None)()
        cubes[key] = open_cube(path)
    return cubes[key]


def _worker_embedder(options: dict):
    from .encoders.registry import get_embedder

    opts = {k: options.get(k) for k in EMBEDDER_OPTIONS}
    opts["device"] = worker_device(opts.get("device") or "auto", _worker_name())
    key = tuple(sorted((k, str(v)) for k, v in opts.items()))
    if getattr(_WORKER, "embedder_key", None) != key:
        _WORKER.embedder = get_embedder(
            opts["model"],
            checkpoint=opts["checkpoint"],
            device=opts["device"],
            precision=opts["precision"] or "auto",
            batch_size=opts["batch_size"],
        )
        _WORKER.embedder_key = key
    return _WORKER.embedder


def _worker_name():
    try:
        from distributed import get_worker

        return get_worker().name
    except (ImportError, ValueError):
        return None


def worker_device(device: str, worker_name, n_gpus: int | None = None) -> str:
    """One GPU per worker when the machine has several: ``auto``/``cuda`` on worker ``k`` become
    ``cuda:{k mod n_gpus}`` (a local cluster names its workers 0, 1, ...; other names are hashed). An
    explicit device (``cpu``, ``cuda:1``) is kept."""
    if device not in ("auto", "cuda") or worker_name is None:
        return device
    if n_gpus is None:
        try:
            import torch

            n_gpus = torch.cuda.device_count()
        except ImportError:
            n_gpus = 0
    if n_gpus < 2:
        return device
    name = str(worker_name)
    k = int(name) if name.isdigit() else zlib.crc32(name.encode())
    return f"cuda:{k % n_gpus}"


def local_gpus(model, device) -> int:
    """CUDA devices a local cluster gives one worker each: none for models that run on the CPU
    (the attribute embedder) or with ``device`` set to something else than auto/cuda."""
    if str(device) not in ("auto", "cuda"):
        return 0
    from .encoders import registry

    model = str(model or registry.DEFAULT_MODEL)
    parts = [model] if Path(model).exists() else model.split("+")
    if all(registry.card(m).tokenization == "attributes" for m in parts):
        return 0
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def connect(scheduler: str | None = None, workers: int | None = None, gpus: int = 0):
    """A Dask client: to ``scheduler`` (an address), else a local cluster of ``workers`` processes of one
    thread each (default: one per GPU when ``gpus``, else Dask's choice). None when ``distributed`` is not
    installed or ``scheduler == "none"``."""
    if scheduler == "none":
        return None
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        if scheduler:
            raise SeisfmError("--scheduler needs Dask: pip install 'napari-seisfm[cluster]'") from None
        return None
    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except OSError as exc:
            raise SeisfmError(f"--scheduler {scheduler}: cannot reach it ({exc})") from None
    cluster = LocalCluster(
        n_workers=workers or gpus or None,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    return Client(cluster)


def disconnect(client) -> None:
    """Close ``client`` and the local cluster :func:`connect` started for it (a remote one is left running).
    Quietly: after Ctrl-C, Dask's own shutdown would print pages of warnings about the tasks it cancels."""
    cluster = getattr(client, "cluster", None)
    logging.disable(logging.CRITICAL)
    try:
        client.close()
        if cluster is not None:
            cluster.close()
    finally:
        logging.disable(logging.NOTSET)


def store_progress(stores) -> tuple[int, int]:
    """Chunks done and in total over ``stores`` (those not created yet count 0 of 0)."""
    from .store.volume import FeatureVolume

    done = total = 0
    for s in stores:
        try:
            d, t = FeatureVolume.open(s, allow_partial=True).progress()
        except Exception:  # noqa: BLE001 - not created yet, or being created: nothing to count
            continue
        done, total = done + d, total + t
    return done, total


def embed_many(
    inputs, out_dir, *, client=None, retries: int = 2, progress: Callable | None = None, **options
) -> list[CubeResult]:
    """Every cube of ``inputs`` (files and folders) into ``out_dir/<cube stem>.zarr``; ``options`` go to
    ``extract_features`` (model, stride, pca, dtype, device, ...). ``client``: a Dask client (see
    :func:`connect`), None runs here one cube after the other. ``progress(done, total)`` in chunks over
    all stores. On Dask a task that fails is retried ``retries`` times; the cubes that still fail are named
    in one error raised after the others have finished."""
    cubes = list_cubes(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stores = [store_for(c, out_dir) for c in cubes]
    options = {k: v for k, v in options.items() if k not in ("progress", "cancel")}
    if client is None:
        results = []
        for cube, store in zip(cubes, stores):
            results.append(_embed_one(str(cube), str(store), options))
            if progress is not None:
                progress(*store_progress(stores))
        return results

    return _Coordinator(client, cubes, stores, options, retries, progress).run()


@dataclass
class _Store:
    cube: Path
    path: Path
    started: float
    total: int = 0
    done: int = 0
    embedded: int = 0  # chunks embedded by chunk tasks of this run
    fv: object = None
    lock: object = None
    plan: dict | None = None  # a new store: its create arguments, PCA picks and dims
    samples: dict = field(default_factory=dict)  # PCA pick -> (its sample vectors, (vectors, live) or None)
    error: BaseException | None = None
    flagged: list = field(default_factory=list)  # chunks this run flagged, in order: each once


class _Coordinator:
    """Steps 1-3 of the module docstring: submits the tasks, holds the stores' locks, writes their flags."""

    def __init__(self, client, cubes, stores, options, retries, progress):
        self.client, self.options, self.retries, self.progress = client, options, retries, progress
        self.stores = [_Store(c, s, time.perf_counter()) for c, s in zip(cubes, stores)]
        self.options.setdefault("workers", 1)  # a Dask worker is one core: no chunk threads on top of the processes
        self.jobs = {}  # future key -> (store, kind, payload, future)

    def run(self) -> list[CubeResult]:
        from distributed import as_completed

        from .store.lock import StoreLock

        self.pending = as_completed()
        with ExitStack() as self.locks:
            try:
                for st in self.stores:
                    try:
                        st.lock = self.locks.enter_context(StoreLock(st.path))
                    except SeisfmError as exc:  # another writer has it
                        st.error = exc
                        continue
                    self._submit(st, "plan", None, _plan_task, str(st.cube), str(st.path), self.options, priority=2)
                for future in self.pending:
                    job = self.jobs.pop(future.key, None)
                    if job is None or job[0].error is not None:  # cancelled with its failed cube
                        continue
                    st, kind, payload, _, again = job
                    try:
                        if future.status != "finished":
                            error = future.exception() if future.status == "error" else None
                            if error is None and again[3] < max(self.retries, 1):  # its result went with a worker
                                self._submit(st, kind, payload, again[0], *again[1], priority=again[2], attempt=again[3] + 1)
                                continue
                            raise error or SeisfmError(f"{kind} task lost ({future.status}) {again[3] + 1} times")
                        getattr(self, f"_{kind}_done")(st, payload, future.result())
                    except Exception as exc:  # noqa: BLE001 - the cube fails, the others go on
                        self._failed(st, exc)
                    self._report()
            except BaseException:  # interrupted: nothing more is flagged, the stores stay resumable
                self.client.cancel([job[3] for job in self.jobs.values()])
                raise
        return self._results()

    def _submit(self, st, kind, payload, fn, *args, priority=0, attempt=0):
        tag = kind if payload is None else f"{kind}-" + "-".join(map(str, payload))
        key = f"{tag}-{st.path.stem}-{zlib.crc32(str(st.path).encode())}-{time.monotonic_ns()}"
        future = self.client.submit(fn, *args, key=key, retries=self.retries, pure=False, priority=priority)
        self.jobs[future.key] = (st, kind, payload, future, (fn, args, priority, attempt))
        self.pending.add(future)

    def _plan_done(self, st, _, plan):
        from .store.grid import chunk_counts
        from .store.volume import FeatureVolume

        if "todo" in plan:  # resume
            st.fv = FeatureVolume.open(st.path, allow_partial=True, mode="r+")
            st.done, st.total = st.fv.progress()
            self._chunks(st, plan["todo"])
            return
        st.plan = plan
        st.total = int(np.prod(chunk_counts(plan["create"]["grid"].shape, plan["create"]["chunks"])))
        if not plan["picks"]:  # no PCA: create now
            return self._create(st, None)
        for index, share in plan["picks"]:  # step 2, in parallel
            self._submit(st, "sample", index, _sample_task, str(st.cube), plan["create"], index, share, self.options, priority=1)

    def _sample_done(self, st, index, result):
        from .store.encoding import pca_basis

        st.samples[tuple(index)] = result
        if len(st.samples) == len(st.plan["picks"]):
            x = np.concatenate([st.samples[tuple(i)][0] for i, _ in st.plan["picks"]]).astype(np.float64)
            self._create(st, pca_basis(x, st.plan["dim"]))

    def _create(self, st, basis):
        from .store.volume import FeatureVolume

        st.fv = FeatureVolume.create(st.path, pca=basis, **st.plan["create"])
        for index, (_, chunk) in sorted(st.samples.items()):  # the picks shipped back: written here, not embedded again
            if chunk is not None:
                st.fv.write_chunk(index, *chunk)
                st.done += 1
        st.samples.clear()
        self._chunks(st, [idx for idx, _ in st.fv.chunk_slices() if not st.fv.chunk_done(idx)])

    def _chunks(self, st, todo):
        if not todo:
            if not st.fv.complete:  # every chunk flagged by a run stopped before marking it
                self._finish(st)
            return
        for index in todo:
            self._submit(st, "chunk", tuple(index), _chunk_task, str(st.cube), str(st.path), [tuple(index)], self.options)

    def _chunk_done(self, st, _, written):
        st.fv.mark_done(written)
        st.flagged += [tuple(i) for i in written]
        st.done += len(written)
        st.embedded += len(written)
        if st.done == st.total:
            self._finish(st)

    def _finish(self, st):
        st.fv.mark_complete()
        st.lock.release()

    def _failed(self, st, exc):
        st.error = exc
        for key, (other, _, _, future, _) in list(self.jobs.items()):  # its other tasks would fail the same way
            if other is st:
                future.cancel()
                del self.jobs[key]
        st.lock.release()

    def _report(self):
        if self.progress is not None:
            self.progress(sum(st.done for st in self.stores), sum(st.total for st in self.stores))

    def _results(self) -> list[CubeResult]:
        failed = [st for st in self.stores if st.error is not None]
        if failed:
            names = "; ".join(f"{st.cube.name}: {_message(st.error)}" for st in failed)
            ok = len(self.stores) - len(failed)
            raise SeisfmError(f"{len(failed)} of {len(self.stores)} cubes failed ({ok} finished): {names}")
        return [
            CubeResult(str(st.cube), str(st.path), st.total, time.perf_counter() - st.started, st.embedded, st.flagged)
            for st in self.stores
        ]


def _message(exc) -> str:
    return str(exc) if isinstance(exc, SeisfmError) else f"{exc.__class__.__name__}: {exc}"
