"""Many cubes, one command (survey.py): on a real Dask LocalCluster, including a worker killed mid-run,
the stores equal single-process runs."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.errors import SeisfmError
from napari_seisfm.extract import extract_features
from napari_seisfm.features import FeatureVolume
from napari_seisfm.survey import embed_survey, store_progress, survey_cubes

OPTIONS = {"stride": 2, "chunks": (8, 8, 8), "workers": 1}


def _cube(path, size, seed):
    from napari_seisfm.io.npy import write_npy
    from napari_seisfm.synthetic import make_survey, survey_geometry

    survey = make_survey((size,) * 3, seed=seed)
    return write_npy(path, survey.amplitude, survey_geometry(survey))


@pytest.fixture(scope="module")
def survey_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("survey")
    (d / "cubes").mkdir()
    for i, size in enumerate((40, 48, 56)):
        _cube(d / "cubes" / f"area{i}.npy", size, seed=10 + i)
    ref = d / "reference"
    # one BLAS thread, as in a Dask worker (the cluster sets OMP_NUM_THREADS=1 there): a different thread
    # count sums in another order, and one int8 code in 10^5 can then differ by one (seen on CI)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        for c in sorted((d / "cubes").iterdir()):
            if c.suffix == ".npy":
                extract_features(c, ref / f"{c.stem}.zarr", **OPTIONS)
    return d


def _same_stores(a_dir, b_dir, names):
    for name in names:
        a, b = FeatureVolume.open(a_dir / f"{name}.zarr"), FeatureVolume.open(b_dir / f"{name}.zarr")
        assert a.complete and b.complete
        va, oka = a.load()
        vb, okb = b.load()
        np.testing.assert_array_equal(va, vb)
        np.testing.assert_array_equal(oka, okb)


NAMES = ["area0", "area1", "area2"]


def test_cubes_of_a_folder_and_refusals(survey_dir, tmp_path):
    assert [p.stem for p in survey_cubes([survey_dir / "cubes"])] == NAMES
    with pytest.raises(SeisfmError, match="no such file"):
        survey_cubes([tmp_path / "missing.sgy"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeisfmError, match="no cubes in this folder"):
        survey_cubes([tmp_path / "empty"])
    (tmp_path / "x").mkdir()
    twin = _cube(tmp_path / "x" / "area0.npy", 32, 1)
    with pytest.raises(SeisfmError, match="same store"):
        survey_cubes([survey_dir / "cubes", twin])


def test_without_dask_the_cubes_run_one_after_the_other(survey_dir, tmp_path):
    from threadpoolctl import threadpool_limits

    seen = []
    with threadpool_limits(1):
        results = embed_survey([survey_dir / "cubes"], tmp_path / "out", progress=lambda d, t: seen.append((d, t)), **OPTIONS)
    assert [r.store for r in results] == [str(tmp_path / "out" / f"{n}.zarr") for n in NAMES]
    _same_stores(survey_dir / "reference", tmp_path / "out", NAMES)
    assert seen[-1][0] == seen[-1][1] > 0


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=50)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_on_a_local_cluster_the_stores_equal_single_process_runs(survey_dir, tmp_path, client):
    results = embed_survey([survey_dir / "cubes"], tmp_path / "out", client=client, poll_s=0.1, **OPTIONS)
    assert sorted(r.cube for r in results) == sorted(str(p) for p in survey_cubes([survey_dir / "cubes"]))
    _same_stores(survey_dir / "reference", tmp_path / "out", NAMES)
    # a second run finds every store complete and writes nothing
    mtimes = {n: os.path.getmtime(tmp_path / "out" / f"{n}.zarr" / "zarr.json") for n in NAMES}
    embed_survey([survey_dir / "cubes"], tmp_path / "out", client=client, poll_s=0.1, **OPTIONS)
    assert mtimes == {n: os.path.getmtime(tmp_path / "out" / f"{n}.zarr" / "zarr.json") for n in NAMES}


def test_a_worker_killed_mid_store_loses_nothing(survey_dir, tmp_path, client):
    """The worker embedding a cube dies after some of its chunks are done: the scheduler runs the task
    again elsewhere, it resumes the store, and every store ends identical to a single-process run."""
    out = tmp_path / "out"
    stores = [out / f"{n}.zarr" for n in NAMES]
    killed = []

    def kill_one(done, total):
        if killed:
            return
        for s in stores:
            d, t = store_progress([s])
            if 0 < d < t:
                key = next(k for k in client.futures if s.stem in str(k))
                owner = [w for w, keys in client.processing().items() if key in keys]
                if owner:
                    pid = client.run(os.getpid, workers=owner)[owner[0]]
                    os.kill(pid, signal.SIGKILL)  # no goodbye: the process is gone mid-chunk
                    killed.append((s.name, d, t))
                return

    embed_survey([survey_dir / "cubes"], out, client=client, poll_s=0.05, progress=kill_one, **OPTIONS)
    assert killed, "no store was caught half-way; the test did not exercise a lost worker"
    _same_stores(survey_dir / "reference", out, NAMES)


def test_the_cli_runs_a_folder_and_refuses_what_does_not_fit(survey_dir, tmp_path, capsys):
    assert cli(["embed", str(survey_dir / "cubes"), "--out", str(tmp_path / "stores"), "--stride", "2",
                "--scheduler", "none"]) == 0
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
