"""Uniform scalar quantization to 2..16 bits, then a lossless stage (the paper's NVCOMP-Quant rows).

Codes are ``round((x - min) / step)`` with ``step = (max - min) / (2**bits - 1)``, kept in the
smallest unsigned integer type that holds them and then compressed with Zstd (nvCOMP on a GPU,
zstandard on the CPU). The stored size is the compressed codes plus the two float64 numbers
(min, step) and one byte (bits) needed to decode: a real size, not ``bits * n / 8``.
"""

from __future__ import annotations

import numpy as np

from ...errors import SeisfmError
from ..base import Codec, Encoded, register
from .lossless import ByteCodec

HEADER_BYTES = 8 + 8 + 1  # min, step (float64) and bits (uint8)


class QuantCodec(Codec):
    kind = "lossy"

    def __init__(self, bits: int, stage: str = "zstd"):
        if not 2 <= bits <= 16:
            raise SeisfmError(f"quant{bits}: bits must be between 2 and 16")
        self.bits = bits
        self.name = f"quant{bits}"
        self.stage = ByteCodec(stage)
        self.backend = f"numpy+{self.stage.label}"
        self.dtype = np.uint8 if bits <= 8 else np.uint16

    def unavailable_reason(self) -> str | None:
        return self.stage.reason

    def encode(self, x: np.ndarray) -> Encoded:
        self.check_input(x)
        lo, hi = float(np.min(x)), float(np.max(x))
        step = (hi - lo) / (2**self.bits - 1) or 1.0  # constant input: any step reconstructs it
        codes = np.rint((x - lo) * (1.0 / step)).astype(self.dtype)
        blob = self.stage.compress(codes.tobytes())
        return Encoded(blob, len(blob) + HEADER_BYTES, x.shape, {"lo": lo, "step": step, "raw_nbytes": codes.nbytes})

    def decode(self, enc: Encoded) -> np.ndarray:
        raw = self.stage.decompress(enc.payload, enc.meta["raw_nbytes"])
        codes = np.frombuffer(raw, dtype=self.dtype).reshape(enc.shape)
        return (codes.astype(np.float32) * np.float32(enc.meta["step"]) + np.float32(enc.meta["lo"])).astype(np.float32)


@register(r"quant(\d+)", "quant8 (quant2..quant16)")
def _quant(m, **_options) -> Codec:
    return QuantCodec(int(m.group(1)))
