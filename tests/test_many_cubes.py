"""Many cubes, one command (many_cubes.py): on a real Dask LocalCluster, split per cube and per chunk, including a
worker killed mid-chunk and an interrupted run, the stores equal single-process runs."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.errors import SeisfmError
from napari_seisfm.extract import extract_features
from napari_seisfm.many_cubes import embed_many, list_cubes, local_gpus, store_progress, worker_device
from napari_seisfm.store.volume import FeatureVolume

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

OPTIONS = {"stride": 2, "chunks": (8, 8, 8), "workers": 1}


def _cube(path, size, seed):
    from napari_seisfm.io.npy import write_npy
    from napari_seisfm.synthetic import make_survey, survey_geometry

    survey = make_survey((size,) * 3, seed=seed)
    return write_npy(path, survey.amplitude, survey_geometry(survey))


@pytest.fixture(scope="module")
def cubes_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("survey")
    (d / "cubes").mkdir()
    for i, size in enumerate((40, 48, 56)):
        _cube(d / "cubes" / f"area{i}.npy", size, seed=10 + i)
    return d


def _references(d, options):
    ref = d / "reference"
    # one BLAS thread, as in a Dask worker (the cluster sets OMP_NUM_THREADS=1 there): a different thread
    # count sums in another order, and one int8 code in 10^5 can then differ by one (seen on CI)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        for c in sorted((d / "cubes").iterdir()):
            if c.suffix == ".npy":
                extract_features(c, ref / f"{c.stem}.zarr", **options)
    return d


@pytest.fixture(scope="module")
def survey_dir(cubes_dir):
    """The three cubes and their single-process stores (118 chunks of the attribute embedder: ~30 s)."""
    return _references(cubes_dir, OPTIONS)


# The smaller, faster variant of the cluster tests (issue 24): two 32^3 cubes, stride 4, 4^3-point chunks
# (8 per cube) and no PCA, so every chunk is a chunk task; the same code paths on a tenth of the work.
SMALL = {"stride": 4, "chunks": (4, 4, 4), "workers": 1, "pca": 0}
SMALL_NAMES = ["small0", "small1"]


@pytest.fixture(scope="module")
def small_survey(tmp_path_factory):
    d = tmp_path_factory.mktemp("small_survey")
    (d / "cubes").mkdir()
    for i, name in enumerate(SMALL_NAMES):
        _cube(d / "cubes" / f"{name}.npy", 32, seed=20 + i)
    return _references(d, SMALL)


def _same_stores(a_dir, b_dir, names):
    for name in names:
        a, b = FeatureVolume.open(a_dir / f"{name}.zarr"), FeatureVolume.open(b_dir / f"{name}.zarr")
        assert a.complete and b.complete
        va, oka = a.load()
        vb, okb = b.load()
        np.testing.assert_array_equal(va, vb)
        np.testing.assert_array_equal(oka, okb)


NAMES = ["area0", "area1", "area2"]


def test_cubes_of_a_folder_and_refusals(cubes_dir, tmp_path):
    survey_dir = cubes_dir
    assert [p.stem for p in list_cubes([survey_dir / "cubes"])] == NAMES
    with pytest.raises(SeisfmError, match="no such file"):
        list_cubes([tmp_path / "missing.sgy"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeisfmError, match="no cubes in this folder"):
        list_cubes([tmp_path / "empty"])
    (tmp_path / "x").mkdir()
    twin = _cube(tmp_path / "x" / "area0.npy", 32, 1)
    with pytest.raises(SeisfmError, match="same store"):
        list_cubes([survey_dir / "cubes", twin])


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
def test_without_dask_the_cubes_run_one_after_the_other(survey_dir, tmp_path):
    from threadpoolctl import threadpool_limits

    seen = []
    with threadpool_limits(1):
        results = embed_many([survey_dir / "cubes"], tmp_path / "out", progress=lambda d, t: seen.append((d, t)), **OPTIONS)
    assert [r.store for r in results] == [str(tmp_path / "out" / f"{n}.zarr") for n in NAMES]
    _same_stores(survey_dir / "reference", tmp_path / "out", NAMES)
    assert seen[-1][0] == seen[-1][1] > 0


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_a_small_survey_on_a_local_cluster_equals_single_process_runs_and_resumes(small_survey, tmp_path, client):
    """The faster variant of the slow tests below: the cubes split over both workers give the single-process
    stores, every chunk flagged once, a finished survey writes nothing again, and a run interrupted midway
    resumes to the same stores."""
    from distributed import get_task_stream

    cubes = [small_survey / "cubes"]
    with get_task_stream(client) as ts:
        results = embed_many(cubes, tmp_path / "out", client=client, **SMALL)
    _same_stores(small_survey / "reference", tmp_path / "out", SMALL_NAMES)
    _chunks_once(results)
    assert [r.embedded for r in results] == [8, 8]  # no PCA: no sample tasks, every chunk a chunk task
    assert len({t["worker"] for t in ts.data if str(t["key"]).startswith("chunk-")}) == 2
    assert [r.embedded for r in embed_many(cubes, tmp_path / "out", client=client, **SMALL)] == [0, 0]

    def interrupt(done, total):
        if done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_many(cubes, tmp_path / "again", client=client, progress=interrupt, **SMALL)
    done_before, total = store_progress([tmp_path / "again" / f"{n}.zarr" for n in SMALL_NAMES])
    assert 5 <= done_before < total == 16
    while any(client.processing().values()):  # tasks already running finish (Dask does not stop them)
        time.sleep(0.05)
    embed_many(cubes, tmp_path / "again", client=client, **SMALL)
    _same_stores(small_survey / "reference", tmp_path / "again", SMALL_NAMES)


def _chunks_once(results):
    """Every chunk a run embedded was flagged exactly once."""
    for r in results:
        assert len(r.flagged) == len(set(r.flagged)) == r.embedded


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
def test_on_a_local_cluster_the_stores_equal_single_process_runs(survey_dir, tmp_path, client):
    from distributed import get_task_stream

    with get_task_stream(client) as ts:
        results = embed_many([survey_dir / "cubes"], tmp_path / "out", client=client, **OPTIONS)
    assert sorted(r.cube for r in results) == sorted(str(p) for p in list_cubes([survey_dir / "cubes"]))
    _same_stores(survey_dir / "reference", tmp_path / "out", NAMES)
    _chunks_once(results)
    # one cube is split over the workers: the chunk tasks of the biggest cube ran on both
    workers = {t["worker"] for t in ts.data if str(t["key"]).startswith("chunk-") and "area2" in str(t["key"])}
    assert len(workers) == 2
    # the PCA basis from sample tasks in parallel, whose chunks are written as they come back, then every
    # other chunk by a chunk task
    samples = {t["worker"] for t in ts.data if str(t["key"]).startswith("sample-") and "area2" in str(t["key"])}
    assert len(samples) == 2
    for r in results:
        assert r.embedded == r.chunks - 8
    # a second run finds every store complete and writes nothing
    mtimes = {n: os.path.getmtime(tmp_path / "out" / f"{n}.zarr" / "zarr.json") for n in NAMES}
    again = embed_many([survey_dir / "cubes"], tmp_path / "out", client=client, **OPTIONS)
    assert [r.embedded for r in again] == [0, 0, 0]
    assert mtimes == {n: os.path.getmtime(tmp_path / "out" / f"{n}.zarr" / "zarr.json") for n in NAMES}


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
def test_a_worker_killed_mid_chunk_loses_nothing(survey_dir, tmp_path, client):
    """A worker dies while it embeds a chunk: the scheduler runs that chunk's task again on another worker,
    no chunk is flagged twice or left out, and every store ends identical to a single-process run."""
    out = tmp_path / "out"
    killed = []

    def kill_one(done, total):
        if killed or done < 4:
            return
        for worker, keys in client.processing().items():
            if any(str(k).startswith("chunk-") for k in keys):
                pid = client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)  # no goodbye: the process is gone mid-task
                killed.append(worker)
                return

    results = embed_many([survey_dir / "cubes"], out, client=client, progress=kill_one, **OPTIONS)
    assert killed, "no chunk task was caught running; the test did not exercise a lost worker"
    _same_stores(survey_dir / "reference", out, NAMES)
    _chunks_once(results)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker for the next tests


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
def test_an_interrupted_run_resumes_where_it_stopped(survey_dir, tmp_path, client):
    out = tmp_path / "out"
    seen = []

    def interrupt(done, total):
        seen.append(done)
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_many([survey_dir / "cubes"], out, client=client, progress=interrupt, **OPTIONS)
    done_before, total = store_progress([out / f"{n}.zarr" for n in NAMES])
    assert 20 <= done_before < total
    assert not list(out.glob("*.lock"))  # the coordinator let go of the stores
    while any(client.processing().values()):  # tasks already running finish (Dask does not stop them)
        time.sleep(0.05)
    before = {n: store_progress([out / f"{n}.zarr"]) for n in NAMES}  # (0, 0): not created before the interrupt
    results = embed_many([survey_dir / "cubes"], out, client=client, **OPTIONS)
    for n, r in zip(NAMES, results):
        done, total = before[n]
        assert r.embedded == (total - done if total else r.chunks - 8)  # flagged chunks are not embedded again
    _same_stores(survey_dir / "reference", out, NAMES)


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
def test_a_cube_that_fails_is_named_and_the_others_finish(survey_dir, tmp_path, client):
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"not a numpy file at all")
    cubes = sorted((survey_dir / "cubes").glob("*.npy"))
    with pytest.raises(SeisfmError, match=r"1 of 4 cubes failed \(3 finished\): broken.npy"):
        embed_many([*cubes, bad], tmp_path / "out", client=client, **OPTIONS)
    _same_stores(survey_dir / "reference", tmp_path / "out", NAMES)
    assert not (tmp_path / "out" / "broken.zarr").exists()


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
def test_a_store_in_use_or_made_otherwise_is_refused_by_name(survey_dir, tmp_path, client):
    import json
    import socket

    from threadpoolctl import threadpool_limits

    cube = survey_dir / "cubes" / "area0.npy"
    out = tmp_path / "out"
    out.mkdir()
    lock = out / "area0.zarr.lock"  # a live writer elsewhere (our parent process) holds area0's store
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started": "now"}))
    with pytest.raises(SeisfmError, match=r"1 of 2 cubes failed \(1 finished\): area0.npy: .*in use by another writer"):
        embed_many([cube, survey_dir / "cubes" / "area1.npy"], out, client=client, **OPTIONS)
    lock.unlink()
    # without PCA, then other settings on the same store: refused unless overwrite, which replaces it
    options = {**OPTIONS, "pca": 0}
    embed_many([cube], out, client=client, **options)
    with threadpool_limits(1):
        extract_features(cube, tmp_path / "ref" / "area0.zarr", **options)
    _same_stores(tmp_path / "ref", out, ["area0"])
    with pytest.raises(SeisfmError, match="area0.npy: .*other settings"):
        embed_many([cube], out, client=client, **{**OPTIONS, "stride": 3})
    embed_many([cube], out, client=client, overwrite=True, **OPTIONS)
    _same_stores(survey_dir / "reference", out, ["area0"])
    assert not list(out.glob("*.lock"))


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
def test_pca_picks_too_big_to_ship_are_embedded_again(survey_dir, tmp_path, client):
    """Picks whose vectors are over the shipping limit (big ViT chunks) come back as samples only and are
    embedded again by chunk tasks: same store."""

    def set_keep(n):
        import napari_seisfm.extract as extract

        extract.KEEP_BYTES = n

    old = client.run(lambda: __import__("napari_seisfm.extract").extract.KEEP_BYTES)
    client.run(set_keep, 0)
    try:
        (result,) = embed_many([survey_dir / "cubes" / "area0.npy"], tmp_path / "out", client=client, **OPTIONS)
    finally:
        client.run(set_keep, next(iter(old.values())))
    assert result.embedded == result.chunks  # the 8 picks too
    _same_stores(survey_dir / "reference", tmp_path / "out", ["area0"])


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
def test_a_worker_running_several_tasks_at_once(survey_dir, tmp_path):
    """Workers of a remote cluster may have several threads: each keeps cubes and embedders of its own."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0", silence_logs=50
        ) as cluster,
        distributed.Client(cluster) as c,
        distributed.get_task_stream(c) as ts,
    ):
        embed_many([survey_dir / "cubes" / "area2.npy"], tmp_path / "out", client=c, **OPTIONS)
    spans = sorted(
        (t["startstops"][0]["start"], t["startstops"][0]["stop"]) for t in ts.data if str(t["key"]).startswith("chunk-")
    )
    assert any(b0 < a1 for (_, a1), (b0, _) in zip(spans, spans[1:]))  # two chunk tasks did overlap
    _same_stores(survey_dir / "reference", tmp_path / "out", ["area2"])


def test_one_gpu_per_worker():
    assert worker_device("auto", 0, n_gpus=4) == "cuda:0"
    assert worker_device("cuda", 5, n_gpus=4) == "cuda:1"
    assert worker_device("auto", "tcp-worker-a", n_gpus=2) in ("cuda:0", "cuda:1")
    assert worker_device("cuda:3", 0, n_gpus=4) == "cuda:3"  # an explicit device is kept
    assert worker_device("cpu", 1, n_gpus=4) == "cpu"
    assert worker_device("auto", 1, n_gpus=1) == "auto"  # one GPU: every worker shares it
    assert worker_device("auto", None, n_gpus=4) == "auto"  # not on a Dask worker
    assert local_gpus("attributes", "auto") == 0  # a CPU model: Dask's own number of workers
    assert local_gpus("seisfm-micro-2.5d", "cpu") == 0
    torch = pytest.importorskip("torch")
    assert local_gpus("seisfm-micro-2.5d", "auto") == torch.cuda.device_count()


@pytest.mark.slow  # the survey fixture's reference stores: over 20 s on a busy 2-core machine
@pytest.mark.extra("cluster")
def test_the_cli_runs_a_folder_and_refuses_what_does_not_fit(survey_dir, tmp_path, capsys):
    assert (
        cli(["embed", str(survey_dir / "cubes"), "--out", str(tmp_path / "stores"), "--stride", "2", "--scheduler", "none"]) == 0
    )
    assert sorted(p.name for p in (tmp_path / "stores").iterdir() if p.suffix == ".zarr") == [f"{n}.zarr" for n in NAMES]
    capsys.readouterr()
    assert cli(["embed", str(survey_dir / "cubes"), "--out", str(tmp_path / "x.zarr"), "--scheduler", "none"]) == 2
    assert "several cubes need a folder" in capsys.readouterr().err
    one = str(survey_dir / "cubes" / "area0.npy")
    assert cli(["embed", one, "--out", str(tmp_path / "one.zarr"), "--workers", "2"]) == 2
    assert "for several cubes" in capsys.readouterr().err
    assert cli(["embed", one, str(tmp_path / "nope.npy"), "--out", str(tmp_path / "s"), "--scheduler", "none"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli(["embed", str(survey_dir / "cubes"), "--out", str(tmp_path / "s2"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "cannot reach it" in capsys.readouterr().err
