"""ZFP (zfpy, the compressor inside seismic-zfp) at a fixed rate, accuracy or precision.

Names: ``zfp-rate<R>`` (R bits per value, e.g. zfp-rate4 = 8x on float32), ``zfp-tol<T>``
(absolute error bound T, in the units of the standardised section, i.e. standard deviations) and
``zfp-prec<P>`` (P bit planes). ZFP works on 4x4 blocks and pads partial blocks itself, so any
section size works. The stored size is zfpy's whole stream, header included.
"""

from __future__ import annotations

import numpy as np

from ...errors import SeisfmError
from ..base import Codec, Encoded, register


class ZfpCodec(Codec):
    kind = "lossy"
    backend = "cpu:zfpy"

    def __init__(self, mode: str, value: float):
        if mode not in ("rate", "tol", "prec"):
            raise SeisfmError(f"zfp-{mode}: unknown ZFP mode (rate, tol, prec)")
        if value <= 0 or (mode == "rate" and value > 32) or (mode == "prec" and value > 32):
            raise SeisfmError(f"zfp-{mode}{value:g}: value out of range")
        self.mode, self.value = mode, value
        self.name = f"zfp-{mode}{value:g}"

    def unavailable_reason(self) -> str | None:
        try:
            import zfpy  # noqa: F401
        except ImportError:
            return "zfpy not installed (pip install zfpy==1.0.1)"
        return None

    def encode(self, x: np.ndarray) -> Encoded:
        import zfpy

        self.check_input(x)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.mode == "rate":
            blob = zfpy.compress_numpy(x, rate=self.value)
        elif self.mode == "tol":
            blob = zfpy.compress_numpy(x, tolerance=self.value)
        else:
            blob = zfpy.compress_numpy(x, precision=int(self.value))
        return Encoded(blob, len(blob), x.shape)

    def decode(self, enc: Encoded) -> np.ndarray:
        import zfpy

        return np.asarray(zfpy.decompress_numpy(enc.payload), dtype=np.float32).reshape(enc.shape)


@register(r"zfp-(rate|tol|prec)([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", "zfp-rate4 (zfp-rate<R>, zfp-tol<T>, zfp-prec<P>)")
def _zfp(m, **_options) -> Codec:
    return ZfpCodec(m.group(1).lower(), float(m.group(2)))
