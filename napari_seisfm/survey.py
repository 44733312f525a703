"""Many cubes, one command: every cube of a survey into its own feature store, on a Dask cluster.

One task per cube runs :func:`~napari_seisfm.extract.extract_features` on a worker (its chunks in threads
there). The properties a long survey run needs come from the store, not from Dask: a task that dies with
its worker is run again by the scheduler on another worker and *resumes* the store (chunks already
marked done are skipped, the chunk that was being written is written once, completely; the dead
worker's store lock is stale and taken over); a rerun of the whole command skips finished stores. Stores
come out byte-identical to single-process runs with one BLAS thread, as Dask's workers have (tested). Without ``distributed`` installed, or with
``scheduler="none"``, the cubes run one after the other in this process.

Progress is read from the stores themselves (their done flags), so it works the same on a local
cluster and on a remote one sharing the file system.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cube import SUFFIXES
from .errors import SeisfmError


@dataclass
class SurveyResult:
    cube: str
    store: str
    chunks: int
    seconds: float


def survey_cubes(inputs) -> list[Path]:
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


def _embed_one(cube: str, out: str, options: dict) -> SurveyResult:
    """The task: one cube into its store (resumes a partial one)."""
    from .extract import extract_features

    t0 = time.perf_counter()
    fv = extract_features(cube, out, **options)
    return SurveyResult(cube, out, fv.progress()[1], time.perf_counter() - t0)


def connect(scheduler: str | None = None, workers: int | None = None):
    """A Dask client: to ``scheduler`` (an address), else a local cluster of ``workers`` processes of one
    thread each. None when ``distributed`` is not installed or ``scheduler == "none"``."""
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
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


def store_progress(stores) -> tuple[int, int]:
    """Chunks done and in total over ``stores`` (those not created yet count 0 of 0)."""
    from .features import FeatureVolume

    done = total = 0
    for s in stores:
        try:
            d, t = FeatureVolume.open(s, allow_partial=True).progress()
        except Exception:  # noqa: BLE001 - not created yet, or being created: nothing to count
            continue
        done, total = done + d, total + t
    return done, total


def embed_survey(inputs, out_dir, *, client=None, retries: int = 2, progress: Callable | None = None,
                 poll_s: float = 1.0, **options) -> list[SurveyResult]:
    """Every cube of ``inputs`` (files and folders) into ``out_dir/<cube stem>.zarr``; ``options`` go to
    ``extract_features`` (model, stride, pca, dtype, device, ...). ``client``: a Dask client (see
    :func:`connect`), None runs here one cube after the other. ``progress(done, total)`` in chunks over
    all stores. A task that fails is retried ``retries`` times (on Dask); the first error left is raised."""
    cubes = survey_cubes(inputs)
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

    from distributed import as_completed

    options.setdefault("workers", 1)  # a Dask worker is one core: no chunk threads on top of the processes
    futures = [client.submit(_embed_one, str(c), str(s), options, key=f"embed-{s.stem}-{abs(hash(str(s)))}",
                             retries=retries, pure=False) for c, s in zip(cubes, stores)]
    results, errors = {}, []
    pending = as_completed(futures, with_results=False)
    while True:
        batch = pending.next_batch(block=False)
        for f in batch:
            if f.status == "finished":
                results[f.key] = f.result()
            else:
                errors.append((f.key, f.exception()))
        if progress is not None:
            progress(*store_progress(stores))
        if pending.is_empty():
            break
        time.sleep(poll_s)
    if errors:
        key, exc = errors[0]
        raise exc if isinstance(exc, SeisfmError) else SeisfmError(f"{key}: {exc.__class__.__name__}: {exc}")
    return [results[f.key] for f in futures]
