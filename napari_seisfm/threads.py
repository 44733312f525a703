"""The thread policy: one BLAS/OpenMP thread per worker; the product's own workers are the parallelism.

Threaded BLAS and OpenMP collapse on a busy machine: on the small products this package runs (banded
filter tiles, micro-model steps, wave-equation stencils, 2048-row GEMM blocks), a library thread that
waits for a core another job holds makes the other threads spin. Measured on a 2-core machine beside two
busy processes (benchmarks/bench_threads.py, docs/scale.md): ``seisfm embed`` 17x slower than quiet with
the libraries' default threads, under 2.5x with one thread per worker. So every command and every dock
job runs inside :func:`one_thread_per_worker`, whatever ``OMP_NUM_THREADS`` says, and parallel work is
split into chunks, tasks or batches by the code that knows its shape (extraction chunks in threads,
kNN blocks in threads, Dask worker processes of one thread each, SimSIMD's own threads for one map).

What it pins, while any caller is inside (nested and concurrent uses are counted; the last one out
restores what was there):

- every BLAS/OpenMP library already loaded (threadpoolctl): OpenBLAS, MKL, libgomp/libiomp;
- torch's intra-op threads (``torch.set_num_threads``), when torch is loaded: never imported for this;
- ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` in the environment, so a library
  loaded later inside the block (torch's OpenMP on its first import, scipy's BLAS) starts with one thread.

OpenMP's thread count is a per-thread setting: every thread entering the block is pinned itself (threads it
starts inherit torch's default of one), and gets its own count back when it leaves.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_lock = threading.Lock()
_depth = 0
_saved: dict | None = None
_local = threading.local()  # how deep the calling thread is in blocks


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _this_thread_torch() -> int | None:
    """torch's thread count as this thread sees it (OpenMP keeps it per thread); None without torch."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") else None


def _set_this_thread_openmp(n: int) -> None:
    """OpenMP's count for the calling thread only (torch's ``set_num_threads`` would also change its default
    for threads started later, which others still inside the block rely on)."""
    try:
        from threadpoolctl import ThreadpoolController

        for lib in ThreadpoolController().select(user_api="openmp").lib_controllers:
            lib.set_num_threads(n)
    except Exception:  # pragma: no cover  # noqa: BLE001
        pass


def _pin() -> dict:
    saved: dict = {"env": {k: os.environ.get(k) for k in ENV}}
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):  # before threadpoolctl: it sets OpenMP's count too
        saved["torch"] = torch.get_num_threads()
    for k in ENV:
        os.environ[k] = "1"
    try:
        from threadpoolctl import threadpool_limits

        saved["pools"] = threadpool_limits(limits=1)
    except Exception:  # pragma: no cover - threadpoolctl is a dependency; a broken library must not stop a job  # noqa: BLE001
        saved["pools"] = None
    saved["openblas"] = _openblas_one_thread()
    return saved


def _openblas_one_thread() -> list:
    """OpenBLAS 0.3.31 (numpy's) ignores ``openblas_set_num_threads`` from any other thread once the main thread
    has called it (threadpoolctl then reports 2 and the product runs 2: measured with per-thread CPU ticks,
    tests/test_threads.py); ``openblas_set_num_threads_local`` takes effect. Returns [(setter, previous)]."""
    out = []
    try:
        import ctypes

        from threadpoolctl import ThreadpoolController

        for lib in ThreadpoolController().select(internal_api="openblas").lib_controllers:
            if lib.get_num_threads() == 1:
                continue
            dynlib = getattr(lib, "dynlib", None) or ctypes.CDLL(lib.filepath, mode=os.RTLD_NOLOAD)
            fn = getattr(dynlib, "openblas_set_num_threads_local", None)
            if fn is not None:
                fn.restype = ctypes.c_int
                out.append((fn, int(fn(1))))
    except Exception:  # pragma: no cover - an unusual BLAS build: threadpoolctl's limit is all there is  # noqa: BLE001
        pass
    return out


def _restore(saved: dict) -> None:
    for k, v in saved["env"].items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    for fn, previous in saved.get("openblas", []):
        fn(previous)
    if saved.get("pools") is not None:
        saved["pools"].restore_original_limits()
    torch = sys.modules.get("torch")
    if "torch" in saved and torch is not None:
        torch.set_num_threads(saved["torch"])


@contextmanager
def one_thread_per_worker():
    """Run the block with one BLAS/OpenMP/torch thread (see the module docstring); re-entrant and thread-safe."""
    global _depth, _saved
    outer = getattr(_local, "depth", 0) == 0
    mine = _this_thread_torch() if outer else None
    with _lock:
        if _depth == 0:
            _saved = _pin()
        _depth += 1
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "set_num_threads"):
            torch.set_num_threads(1)  # its default for new threads, and this thread's count
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                saved, _saved = _saved, None
                _restore(saved)
            elif outer and mine is not None:
                _set_this_thread_openmp(mine)  # the others still run pinned; this thread gets its count back


def pinned() -> bool:
    """True while some caller is inside :func:`one_thread_per_worker`."""
    return _depth > 0
