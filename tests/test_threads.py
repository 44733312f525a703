"""The thread policy (napari_seisfm/threads.py): one BLAS/OpenMP/torch thread inside every command and dock job,
whatever the environment says, and what was there before restored afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from napari_seisfm import cli, threads


def blas_threads() -> set:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


FRESH = "SEISFM_TEST_FRESH_PROCESS"


@pytest.fixture
def fresh_process(request):
    """Run the test in a process of its own: thread counts are process state, and what earlier tests of this
    session left in it (OpenBLAS's per-thread counts, threadpoolctl's controlling thread) is not the state a
    command or a dock starts from. Inside that process it gives False and the test runs; outside it gives True
    once that run passed."""
    if os.environ.get(FRESH):
        return False
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{request.node.nodeid}"],
        capture_output=True,
        text=True,
        env={**os.environ, FRESH: "1"},
        timeout=600,
        cwd=request.config.rootpath,
    )
    assert run.returncode == 0 and re.search(r"\b1 passed", run.stdout), run.stdout[-3000:] + run.stderr[-2000:]
    return True  # the test ran, and passed, in its own process: the body here has nothing left to do


@pytest.fixture
def two_threads():
    """Libraries at 2 threads before the block (as on a 2-core laptop with no OMP_NUM_THREADS)."""
    before = torch.get_num_threads()
    with threadpool_limits(limits=2):
        torch.set_num_threads(2)
        yield
    torch.set_num_threads(before)


def test_the_block_pins_blas_torch_and_the_environment_and_restores_them(fresh_process, two_threads):
    if fresh_process:
        return
    np.ones(2) @ np.ones(2)  # numpy's BLAS is loaded
    env_before = {k: os.environ.get(k) for k in threads.ENV}
    assert blas_threads() == {2} and torch.get_num_threads() == 2
    with threads.one_thread_per_worker():
        assert threads.pinned()
        assert blas_threads() == {1}
        assert torch.get_num_threads() == 1
        assert all(os.environ[k] == "1" for k in threads.ENV)  # libraries loaded inside start with one thread
    assert not threads.pinned()
    assert blas_threads() == {2} and torch.get_num_threads() == 2
    assert {k: os.environ.get(k) for k in threads.ENV} == env_before


def test_nested_and_concurrent_blocks_restore_only_when_the_last_one_ends(fresh_process, two_threads):
    if fresh_process:
        return
    inside, release = threading.Event(), threading.Event()
    seen = []

    def job():
        with threads.one_thread_per_worker():
            inside.set()
            release.wait(10)
            seen.append((blas_threads(), torch.get_num_threads()))

    t = threading.Thread(target=job)
    t.start()
    inside.wait(10)
    with threads.one_thread_per_worker(), threads.one_thread_per_worker():
        assert blas_threads() == {1}
    assert blas_threads() == {1}, "the other job is still running: it keeps its single thread"
    release.set()
    t.join(10)
    assert seen == [({1}, 1)]
    assert blas_threads() == {2} and torch.get_num_threads() == 2


def test_every_cli_command_runs_with_one_thread(monkeypatch, two_threads):
    seen = {}

    def run(args):
        seen["blas"], seen["torch"], seen["pinned"] = blas_threads(), torch.get_num_threads(), threads.pinned()
        return 0

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda command=None: parser)
    args = parser.parse_args(["info", "x.sgy"])
    monkeypatch.setattr(parser, "parse_args", lambda argv: (setattr(args, "run", run), args)[1])
    assert cli.main(["info", "x.sgy"]) == 0
    assert seen == {"blas": {1}, "torch": 1, "pinned": True}
    assert torch.get_num_threads() == 2


def test_a_command_in_a_fresh_process_ignores_omp_num_threads(tmp_path):
    """OMP_NUM_THREADS=2 in the environment: the command's torch still runs one thread."""
    code = (
        "import sys, torch\n"
        "from napari_seisfm import cli, threads\n"
        "def run(args):\n"
        "    print('threads', torch.get_num_threads(), threads.pinned())\n"
        "p = cli.build_parser()\n"
        "cli.build_parser = lambda command=None: p\n"
        "a = p.parse_args(['info', 'x.sgy']); a.run = run\n"
        "p.parse_args = lambda argv: a\n"
        "sys.exit(cli.main(['info', 'x.sgy']))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "threads 1 True" in out.stdout


def _task_ticks() -> dict:
    out = {}
    for t in os.listdir("/proc/self/task"):
        try:
            f = open(f"/proc/self/task/{t}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
        except OSError:  # a thread that ended meanwhile
            continue
        out[int(t)] = int(f[11]) + int(f[12])  # utime + stime, clock ticks
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread CPU times from Linux /proc")
def test_a_worker_thread_really_runs_blas_alone_after_the_main_thread_set_a_count(two_threads):
    """numpy's OpenBLAS ignores a thread count set from a worker thread once the main thread set one (as the
    fixture's threadpoolctl limit does): the policy must still leave the worker's matrix products unthreaded.
    Measured by what it costs: CPU ticks of every other thread of the process during 30 products."""
    a = np.random.default_rng(0).random((700, 700))
    a @ a
    time.sleep(1.0)  # OpenBLAS's helper threads spin a while after a threaded product: let them go idle first
    seen = {}

    def others(t0, t1, me):
        return sum(t1[k] - t0.get(k, 0) for k in t1 if k != me)

    def job():
        with threads.one_thread_per_worker():
            me = threading.get_native_id()
            t0, w0 = _task_ticks(), time.perf_counter()
            for _ in range(30):
                a @ a
            t1, wall = _task_ticks(), time.perf_counter() - w0
            seen["own"] = t1[me] - t0[me]
            seen["others"] = others(t0, t1, me)
            # the process's other threads (Qt, imports, earlier tests' workers) over as long without BLAS work
            t2 = _task_ticks()
            time.sleep(wall)
            seen["noise"] = others(t2, _task_ticks(), me)

    t = threading.Thread(target=job)
    t.start()
    t.join(120)
    assert seen["own"] >= 5, seen  # the work was done (and measurable)
    assert seen["others"] <= seen["noise"] + max(3, seen["own"] // 5), seen  # no BLAS helper thread worked alongside


def test_a_dock_job_runs_with_one_thread_and_gives_the_counts_back(fresh_process, qtbot, two_threads):
    """The dock's JobController runs its function inside the policy, in its worker thread."""
    if fresh_process:
        return
    from qtpy.QtWidgets import QWidget

    from napari_seisfm.plugin.widgets._jobs import JobController

    w = QWidget()
    qtbot.addWidget(w)
    jobs = JobController(w)
    seen = {}

    def job():
        seen.update(pinned=threads.pinned(), blas=blas_threads(), torch=torch.get_num_threads())
        return 1

    done = []
    assert jobs.start(job, on_done=done.append)
    qtbot.waitUntil(lambda: done == [1], timeout=20000)
    assert seen == {"pinned": True, "blas": {1}, "torch": 1}
    assert not threads.pinned() and blas_threads() == {2}
