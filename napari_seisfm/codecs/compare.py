"""Run a list of codecs on one section and measure each: the one call behind CLI and widget."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..errors import SeisfmCancelled, SeisfmError
from .base import Codec
from .metrics import METRICS, Reference
from .preprocess import TRIM_MULTIPLE, Prepared, prepare
from .registry import get_codec

QUANT_BITS = (4, 6, 8, 10, 12, 14, 16)
DEFAULT_CODECS: tuple[str, ...] = (
    *(f"quant{b}" for b in QUANT_BITS),
    "lz4",
    "snappy",
    "gdeflate",
    "deflate",
    "ans",
    "zstd",
    "zfp-rate2",
    "zfp-rate4",
    "zfp-rate8",
    "zfp-rate16",
    "zfp-tol0.01",
)
COSMOS_CODECS: tuple[str, ...] = ("cosmos-CI8x8", "cosmos-CI16x16", "cosmos-DI8x8", "cosmos-DI16x16")


def expand_codecs(spec: str, cosmos_dir: str | None = None) -> list[str]:
    """``"default,cosmos,zfp-rate4"`` -> codec names, groups expanded, duplicates dropped (the CLI's --codecs and
    the codec dock's field). ``default`` includes the Cosmos tokenizers only when ``cosmos_dir`` is given."""
    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if item == "default":
            names += list(DEFAULT_CODECS) + (list(COSMOS_CODECS) if cosmos_dir else [])
        elif item == "cosmos":
            names += list(COSMOS_CODECS)
        elif item:
            names.append(item)
    return list(dict.fromkeys(names))


@dataclass
class Row:
    """One line of the table. ``status`` is "ok" or "unavailable: <reason>" (metrics then nan)."""

    method: str
    kind: str
    backend: str
    status: str = "ok"
    nbytes: int = 0
    ratio: float = float("nan")
    size_pct: float = float("nan")
    snr: float = float("nan")
    psnr: float = float("nan")
    amp: float = float("nan")
    phase: float = float("nan")
    ssim: float = float("nan")
    corr: float = float("nan")
    nrms: float = float("nan")
    mae: float = float("nan")
    encode_s: float = float("nan")
    decode_s: float = float("nan")
    metrics_s: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Comparison:
    rows: list[Row]
    prepared: Prepared
    freqs: np.ndarray  # Hz, or cycles per sample when sample_interval_ms is None
    spectra: dict[str, np.ndarray]  # "input" and one per available codec
    reconstructions: dict[str, np.ndarray] = field(default_factory=dict)  # standardised units
    total_s: float = 0.0

    @property
    def input(self) -> np.ndarray:
        return self.prepared.data

    def info(self) -> dict[str, Any]:
        p = self.prepared
        return {
            "original_shape": list(p.original_shape),
            "compared_shape": list(p.data.shape),
            "sample_interval_ms": p.sample_interval_ms,
            "lowpass_hz": p.lowpass_hz,
            "input_bytes": int(p.data.size * 4),
            "total_s": self.total_s,
        }


def build_codecs(codecs: Sequence[str | Codec], cosmos_dir: str | None = None) -> list[Codec]:
    """Names -> codec objects; unknown names and missing checkpoints fail here, before any work."""
    if not codecs:
        raise SeisfmError("no codecs given")
    out = [c if isinstance(c, Codec) else get_codec(c, cosmos_dir=cosmos_dir) for c in codecs]
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SeisfmError(f"codec(s) listed twice: {', '.join(dupes)}")
    return out


def compare(
    section: np.ndarray,
    codecs: Sequence[str | Codec] = DEFAULT_CODECS,
    sample_interval_ms: float | None = None,
    *,
    lowpass_hz: float | None = None,
    trim_multiple: int = TRIM_MULTIPLE,
    cosmos_dir: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Any = None,
    keep_reconstructions: bool = True,
) -> Comparison:
    """Prepare ``section`` (traces, samples) as the paper did, then encode/decode/measure each codec.

    ``progress(done, total, name)`` is called before each codec and once at the end;
    ``cancel`` is anything with ``is_set()`` (threading.Event), checked between codecs.
    """
    t_start = time.perf_counter()
    todo = build_codecs(codecs, cosmos_dir)
    prepared = prepare(section, sample_interval_ms, lowpass_hz, trim_multiple)
    x = prepared.data
    for c in todo:  # every size problem reported before the first codec runs
        if c.unavailable_reason() is None:
            c.check_input(x)
    ref = Reference(x, sample_interval_ms)
    rows: list[Row] = []
    spectra = {"input": ref.power}
    recons: dict[str, np.ndarray] = {}
    for i, codec in enumerate(todo):
        if cancel is not None and cancel.is_set():
            raise SeisfmCancelled(f"codec comparison stopped after {i} of {len(todo)} codecs")
        if progress:
            progress(i, len(todo), codec.name)
        row = Row(codec.name, codec.kind, codec.backend)
        reason = codec.unavailable_reason()
        if reason:
            row.status = f"unavailable: {reason}"
            rows.append(row)
            continue
        t0 = time.perf_counter()
        enc = codec.encode(x)
        t1 = time.perf_counter()
        y = codec.decode(enc)
        t2 = time.perf_counter()
        if y.shape != x.shape:
            raise SeisfmError(f"{codec.name}: decoded shape {y.shape} differs from input {x.shape}")
        values, spectra[codec.name] = ref.metrics(y)
        t3 = time.perf_counter()
        row.nbytes = int(enc.nbytes)
        row.ratio = x.size * 4 / enc.nbytes
        row.size_pct = 100.0 / row.ratio
        for k in METRICS:
            setattr(row, k, values[k])
        row.encode_s, row.decode_s, row.metrics_s = t1 - t0, t2 - t1, t3 - t2
        rows.append(row)
        if keep_reconstructions:
            recons[codec.name] = y
    if progress:
        progress(len(todo), len(todo), "done")
    return Comparison(rows, prepared, ref.freqs, spectra, recons, time.perf_counter() - t_start)
