"""Lossless byte codecs: LZ4, Snappy, Deflate, Zstd, GDeflate, ANS.

On a CUDA machine with NVIDIA's nvCOMP Python package (``nvidia.nvcomp``) all six run on the GPU,
as in the paper. Without it, the four that well-kept CPU libraries implement run on the CPU
(lz4, cramjam's Snappy, zlib, zstandard); GDeflate and ANS have no CPU library, so they are
listed as unavailable with the reason rather than imitated. The backend is part of the name shown
in the table. ``name@cpu`` / ``name@nvcomp`` force one backend (benchmarks compare them).
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

from ...errors import SeisfmError
from ..base import Codec, Encoded, register

NVCOMP_NAMES = {
    "lz4": "LZ4",
    "snappy": "Snappy",
    "deflate": "Deflate",
    "zstd": "Zstd",
    "gdeflate": "GDeflate",
    "ans": "ANS",
}
CPU_BACKENDS = {"lz4": "cpu:lz4", "snappy": "cpu:cramjam", "deflate": "cpu:zlib", "zstd": "cpu:zstandard"}
DEFLATE_LEVEL = 6  # zlib's default
ZSTD_LEVEL = 3  # zstandard's default


@functools.lru_cache(maxsize=1)
def nvcomp_status() -> tuple[object | None, str | None]:
    """(nvcomp module, None) when nvCOMP can run on a GPU here, else (None, reason)."""
    try:
        from nvidia import nvcomp
    except ImportError:
        return None, "nvCOMP Python package (nvidia-nvcomp-cu12) not installed"
    try:
        import torch

        if not torch.cuda.is_available():
            return None, "no CUDA device"
    except ImportError:
        return None, "torch not installed, cannot check for CUDA"
    return nvcomp, None


def cpu_compress(algo: str, data: bytes) -> bytes:
    """Compress with the CPU library for ``algo`` (one of CPU_BACKENDS)."""
    if algo == "lz4":
        import lz4.block

        return lz4.block.compress(data, store_size=True)
    if algo == "snappy":
        import cramjam

        return bytes(cramjam.snappy.compress_raw(data))
    if algo == "deflate":
        c = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15)  # raw deflate, no zlib wrapper
        return c.compress(data) + c.flush()
    if algo == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    raise SeisfmError(f"{algo}: no CPU implementation")


def cpu_decompress(algo: str, blob: bytes, nbytes: int) -> bytes:
    if algo == "lz4":
        import lz4.block

        return lz4.block.decompress(blob)
    if algo == "snappy":
        import cramjam

        return bytes(cramjam.snappy.decompress_raw(blob))
    if algo == "deflate":
        return zlib.decompress(blob, -15, nbytes)
    if algo == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(blob, max_output_size=nbytes)
    raise SeisfmError(f"{algo}: no CPU implementation")


class ByteCodec:
    """Bytes in, bytes out through one algorithm on one backend ("cpu" or "nvcomp")."""

    def __init__(self, algo: str, backend: str = "auto"):
        self.algo = algo
        nv, nv_reason = nvcomp_status()
        if backend == "auto":
            backend = "nvcomp" if nv is not None else "cpu"
        self.backend = backend
        self.reason: str | None = None
        if backend == "nvcomp":
            self.label = "gpu:nvcomp"
            self.reason = nv_reason
        elif backend == "cpu":
            self.label = CPU_BACKENDS.get(algo, "none")
            if algo not in CPU_BACKENDS:
                self.reason = f"no CPU library implements {NVCOMP_NAMES[algo]}; needs nvCOMP on a GPU ({nv_reason})"
        else:
            raise SeisfmError(f"{algo}@{backend}: unknown backend (use cpu or nvcomp)")

    def compress(self, data: bytes) -> bytes:
        if self.backend == "cpu":
            return cpu_compress(self.algo, data)
        nv, _ = nvcomp_status()
        codec = nv.Codec(algorithm=NVCOMP_NAMES[self.algo])
        arr = nv.as_array(np.frombuffer(data, dtype=np.uint8)).cuda()
        return np.asarray(codec.encode(arr).cpu()).tobytes()

    def decompress(self, blob: bytes, nbytes: int) -> bytes:
        if self.backend == "cpu":
            return cpu_decompress(self.algo, blob, nbytes)
        nv, _ = nvcomp_status()
        codec = nv.Codec(algorithm=NVCOMP_NAMES[self.algo])
        arr = nv.as_array(np.frombuffer(blob, dtype=np.uint8)).cuda()
        out = np.asarray(codec.decode(arr).cpu())
        return out.view(np.uint8).reshape(-1)[:nbytes].tobytes()


class LosslessCodec(Codec):
    """float32 section -> bytes through one lossless algorithm: must reconstruct bit for bit."""

    kind = "lossless"

    def __init__(self, algo: str, backend: str = "auto"):
        self.bytes = ByteCodec(algo, backend)
        self.name = algo if backend == "auto" else f"{algo}@{backend}"
        self.backend = self.bytes.label

    def unavailable_reason(self) -> str | None:
        return self.bytes.reason

    def encode(self, x: np.ndarray) -> Encoded:
        self.check_input(x)
        raw = np.ascontiguousarray(x, dtype=np.float32).tobytes()
        blob = self.bytes.compress(raw)
        return Encoded(blob, len(blob), x.shape, {"raw_nbytes": len(raw)})

    def decode(self, enc: Encoded) -> np.ndarray:
        raw = self.bytes.decompress(enc.payload, enc.meta["raw_nbytes"])
        return np.frombuffer(raw, dtype=np.float32).reshape(enc.shape).copy()


@register(r"(lz4|snappy|deflate|zstd|gdeflate|ans)(?:@(cpu|nvcomp))?", "zstd (lz4, snappy, deflate, gdeflate, ans; @cpu/@nvcomp)")
def _lossless(m, **_options) -> Codec:
    return LosslessCodec(m.group(1).lower(), (m.group(2) or "auto").lower())
