"""Dense dot-product kernels: one query against every stored vector (the whole similarity map).

The map is one matrix-vector product over the ``(N, dim)`` store. Which kernel is fastest depends on
the stored dtype (benchmarks/bench_search.py measures them; docs/search.md has the numbers):

- ``int8``: SimSIMD ``cdist(..., metric="dot")`` (AVX-512 VNNI here) on blocks of rows that stay in cache,
  spread over this kernel's threads; the query is
  quantised to int8 with its own scale ``127 / max|q|``, so the map is exact integer arithmetic on the
  stored vectors plus the query's rounding error (at most ``0.5 * sqrt(dim) / scale``, typically
  ``~0.29 / scale``; docs/search.md). NumKong's ``dots_packed`` is the fallback when SimSIMD is absent.
- ``float16``: SimSIMD f16 dot, blocked the same way (numpy has no fast f16 path: ~30x slower).

A ``post`` function given to a call runs on each block of the finished scores while it is still in cache
(the probe's sigmoid): no second pass over the map. Blocks, not SimSIMD's own threads: measured on a
2-core machine (benchmarks/bench_click.py, docs/search.md), the blocked map with the probe's sigmoid costs
about what SimSIMD's threaded map alone did, and a thread that finishes its blocks early takes the next
ones when another job holds a core. (``cdist(..., out=...)`` also drops one reference to ``None`` per call
in simsimd 6.5, which a call per block would soon turn into a crash; a fresh float32 result per block has
no such bug.)
- ``float32``: numpy ``matrix @ q`` (BLAS sgemv) -- also the reference every kernel is tested against.

:func:`support_dots` is the other shape of the problem (kNN): many queries against a small support set,
one blocked GEMM -- oneDNN's exact int8 matmul for int8 stores, torch float32 otherwise.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

KERNELS = ("simsimd", "numkong", "numpy")
BLOCK_ROWS = 1 << 15  # rows per SimSIMD call: 2 MiB of int8 x 64 in, 128 KiB of scores out (L2-sized)

# usearch's compiled module carries its own build of the SimSIMD kernels. A standalone simsimd loaded
# after it rejects int8 inputs ("matching datatypes"), and a numkong call after that failure can die on
# an illegal instruction (usearch 2.26, simsimd 6.5, numkong 7.8 on an AMD EPYC). Loaded before usearch,
# simsimd works. So: load simsimd now if usearch is not in the process yet, and never use a simsimd that
# came after usearch (another plugin, a notebook). tests/test_search_usearch.py checks both orders.
SIMSIMD_SAFE = "simsimd" in sys.modules or "usearch.compiled" not in sys.modules
for _name in ("simsimd", "numkong") if SIMSIMD_SAFE else ("numkong",):
    try:  # noqa: SIM105
        __import__(_name)
    except ImportError:  # pragma: no cover - optional kernels
        pass


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def available(name: str) -> bool:
    if name == "numpy":
        return True
    if name == "simsimd" and not SIMSIMD_SAFE:
        return False
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def choose(dtype: str, kernel: str = "auto") -> str:
    """The kernel to use for a stored dtype: the fastest one measured here that is installed."""
    if kernel != "auto":
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; choose from {KERNELS}")
        return kernel
    order = {"int8": ("simsimd", "numkong", "numpy"), "float16": ("simsimd", "numkong", "numpy"), "float32": ("numpy",)}
    return next(k for k in order[dtype] if available(k))


def quantise_query(query: np.ndarray) -> tuple[np.ndarray, float]:
    """int8 query and its scale (``query ~= q8 / scale``), using the full int8 range."""
    peak = float(np.max(np.abs(query)))
    scale = 127.0 / peak if peak > 0 else 1.0
    return np.clip(np.rint(query * scale), -127, 127).astype(np.int8), scale


class DotKernel:
    """``scores = decode(matrix) @ query`` for one float32 query, in the stored dtype's fastest kernel."""

    def __init__(self, matrix: np.ndarray, *, quant_scale: float = 1.0, kernel: str = "auto", threads: int | None = None):
        self.matrix = matrix
        self.dtype = str(matrix.dtype)
        self.quant_scale = float(quant_scale) if self.dtype == "int8" else 1.0
        self.name = choose(self.dtype, kernel)
        self.threads = threads or default_threads()
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def query_error(self, query: np.ndarray) -> float:
        """Upper bound of |score - exact float32 score| that quantising the query adds (unit stored vectors)."""
        query = np.asarray(query, np.float32)
        if self.dtype == "int8" and self.name != "numpy":
            q8, scale = quantise_query(query)
            return float(np.linalg.norm(q8 / scale - query))
        if self.dtype == "float16" and self.name != "numpy":
            return float(np.linalg.norm(query.astype(np.float16).astype(np.float32) - query))
        return 0.0

    def __call__(self, query: np.ndarray, out: np.ndarray | None = None, post=None) -> np.ndarray:
        """Scores of every row (float32). ``post(block)``, if given, is applied in place to each finished
        block of scores (a view of ``out``), in this kernel's threads."""
        query = np.asarray(query, np.float32).ravel()
        n = len(self.matrix)
        if out is None:
            out = np.empty(n, np.float32)
        getattr(self, "_" + self.name)(query, out, post)
        return out

    # ------------------------------------------------------------------ kernels
    def _rows(self):
        n = len(self.matrix)
        k = self.threads if self._pool else 1
        bounds = np.linspace(0, n, k + 1).astype(int)
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def _map(self, fn):
        parts = self._rows()
        if self._pool and len(parts) > 1:
            list(self._pool.map(fn, parts))
        else:
            for p in parts:
                fn(p)

    def _blocks(self, fn, n: int, step: int = BLOCK_ROWS):
        """``fn(slice)`` for blocks of ``step`` rows; each thread takes the next block when it is done."""
        nxt = itertools.count().__next__  # atomic under the GIL

        def worker():
            while (a := nxt() * step) < n:
                fn(slice(a, min(a + step, n)))

        k = min(self.threads, -(-n // step)) if self._pool else 1
        if k > 1:
            list(self._pool.map(lambda _: worker(), range(k)))
        else:
            worker()

    def _simsimd(self, query, out, post=None):
        import simsimd

        if self.dtype == "int8":
            q, scale = quantise_query(query)
            factor = np.float32(1.0 / (scale * self.quant_scale))
        else:
            q, factor = query.astype(self.dtype), None
        q = q[None]

        def run(rows):  # SimSIMD releases the GIL: threads over blocks use the cores
            r = np.asarray(simsimd.cdist(self.matrix[rows], q, metric="dot", threads=1, out_dtype="float32")).reshape(-1)
            o = out[rows]
            if factor is None:
                o[:] = r
            else:
                np.multiply(r, factor, out=o)
            if post is not None:
                post(o)

        self._blocks(run, len(self.matrix))

    def _numkong(self, query, out, post=None):
        import numkong

        if self.dtype == "int8":
            q, scale = quantise_query(query)
            factor = np.float32(1.0 / (scale * self.quant_scale))
        else:
            q, factor = query.astype(self.dtype), np.float32(1.0)
        packed = numkong.dots_pack(q[None])

        def run(rows):  # numkong releases the GIL, so two threads use two cores
            r = np.asarray(numkong.dots_packed(self.matrix[rows], packed)).reshape(-1)
            np.multiply(r, factor, out=out[rows], casting="unsafe")
            if post is not None:
                post(out[rows])

        self._map(run)

    def _numpy(self, query, out, post=None):
        if self.dtype == "float32":
            np.matmul(self.matrix, query, out=out)
            if post is not None:
                post(out)
            return
        q = query / np.float32(self.quant_scale)
        step = 1 << 20  # decode in blocks: never a float32 copy of the whole store

        def run(rows):
            for a in range(rows.start, rows.stop, step):
                b = min(a + step, rows.stop)
                np.matmul(self.matrix[a:b].astype(np.float32), q, out=out[a:b])
                if post is not None:
                    post(out[a:b])

        self._map(run)


# ---------------------------------------------------------------------- many queries x a small support set
def onednn_int8_available() -> bool:
    """oneDNN's u8 x s8 -> f32 matmul through torch (VNNI on x86), checked exact on worst-case values.

    Without AVX-512 VNNI / AVX-VNNI an int8 GEMM may sum u8*s8 pairs into saturating int16; the check
    uses the extreme values that would saturate, so such a machine falls back to the float32 GEMM.
    """
    global _ONEDNN_OK
    if _ONEDNN_OK is None:
        _ONEDNN_OK = False
        try:
            import torch

            if torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_pointwise"):
                rng = np.random.default_rng(0)
                x = rng.integers(-127, 128, (64, 64)).astype(np.int8)
                w = rng.integers(-127, 128, (40, 64)).astype(np.int8)
                x[:8], w[:8] = 127, 127  # (128 + 127) * 127 * 2 = 64770 > int16
                x[8:16], w[8:16] = -127, -127
                w[16:24] = -127
                got = _SupportInt8(w)(x).numpy()
                _ONEDNN_OK = bool(np.array_equal(got, x.astype(np.int64) @ w.astype(np.int64).T))
        except Exception:  # pragma: no cover - depends on the torch build  # noqa: BLE001
            _ONEDNN_OK = False
    return _ONEDNN_OK


_ONEDNN_OK: bool | None = None


class _SupportInt8:
    """Exact int8 dot products ``x @ w.T`` (float32 out) with oneDNN: x shifted to u8 (zero point 128)."""

    name = "onednn-int8"

    def __init__(self, w: np.ndarray):
        import torch

        self._torch = torch
        n = len(w)
        self._w = torch.ops.onednn.qlinear_prepack(torch.from_numpy(np.ascontiguousarray(w)), None)
        self._ws = torch.ones(n, dtype=torch.float32)
        self._wz = torch.zeros(n, dtype=torch.int64)

    def __call__(self, x: np.ndarray):
        torch = self._torch
        u8 = np.bitwise_xor(x.view(np.uint8), np.uint8(0x80))  # int8 + 128 as uint8, one pass
        return torch.ops.onednn.qlinear_pointwise(
            torch.from_numpy(u8), 1.0, 128, self._w, self._ws, self._wz, None, 1.0, 0, torch.float32, "none", [], ""
        )


class _SupportFloat:
    """``x @ w.T`` in float32 (torch, device-aware); exact for int8 values (products and sums < 2^24)."""

    name = "torch-f32"

    def __init__(self, w: np.ndarray, device: str = "cpu"):
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self._wt = torch.from_numpy(np.asarray(w, np.float32)).T.contiguous().to(self.device)  # (dim, n)
        self._local = threading.local()  # per worker thread: reused float32 input buffers

    def __call__(self, x: np.ndarray):
        torch = self._torch
        b = len(x)
        bufs = self._local.__dict__.setdefault("bufs", {})
        if b not in bufs:  # reused per block size: the int8/f16 -> f32 conversion lands in place
            bufs[b] = torch.empty((b, x.shape[1]), dtype=torch.float32, device=self.device)
        xf = bufs[b]
        xf.copy_(torch.from_numpy(np.ascontiguousarray(x)))
        if self.device.type == "cuda":
            prev = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = False  # TF32 would round the products
            try:
                return xf @ self._wt
            finally:
                torch.backends.cuda.matmul.allow_tf32 = prev
        return xf @ self._wt


def support_dots(support: np.ndarray, *, backend: str = "auto", device: str = "cpu"):
    """A callable ``queries (b, dim) in the stored dtype -> torch float32 (b, n)`` of raw dot products.

    int8 stores: the products are of the stored integers (exact either way); ``auto`` takes oneDNN's
    int8 GEMM on CPU when it passes the exactness check (about 3x faster than float32 here,
    docs/search.md), else the float32 GEMM. float16/float32 stores: float32 GEMM.
    """
    if backend not in ("auto", "onednn-int8", "torch-f32"):
        raise ValueError(f"unknown backend {backend!r}")
    int8_ok = support.dtype == np.int8 and device == "cpu"
    if backend == "onednn-int8" or (backend == "auto" and int8_ok and onednn_int8_available()):
        if not int8_ok:
            raise ValueError("onednn-int8 needs an int8 store on the CPU")
        return _SupportInt8(support)
    return _SupportFloat(support, device)
