"""The paper's preparation of a section before any codec sees it.

1. refuse NaN/inf and all-constant sections (constant traces alone, e.g. dead ones, are fine);
2. trim each axis to a multiple of 32 (keeping the first samples/traces), as the Cosmos tokenizers
   need and the paper did for every method;
3. optionally low-pass below a cut-off (the paper: 20 Hz) with a zero-phase Butterworth filter
   (``scipy.signal.butter`` + ``sosfiltfilt``) along time, the last axis;
4. standardise the whole section to zero mean, unit variance (float32).

Axis convention everywhere in ``codecs``: 2D arrays are (trace, sample), time along the last axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SeisfmError

TRIM_MULTIPLE = 32
LOWPASS_ORDER = 6


@dataclass
class Prepared:
    """The standardised section plus what is needed to map results back to the input's units."""

    data: np.ndarray  # float32 (traces, samples), zero mean, unit variance
    original_shape: tuple[int, int]
    mean: float
    std: float
    lowpass_hz: float | None
    sample_interval_ms: float | None

    def to_input_units(self, y: np.ndarray) -> np.ndarray:
        """Undo the standardisation (e.g. to show a reconstruction next to the source)."""
        return (y * self.std + self.mean).astype(np.float32)


def check_section(x: np.ndarray, what: str = "section") -> np.ndarray:
    """2D finite, non-constant float array, or a SeisfmError saying what is wrong."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise SeisfmError(f"{what}: expected a 2D section (traces, samples), got shape {x.shape}")
    if x.size == 0:
        raise SeisfmError(f"{what}: empty section {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise SeisfmError(f"{what}: not numeric (dtype {x.dtype})")
    bad = np.count_nonzero(~np.isfinite(x))
    if bad:
        raise SeisfmError(f"{what}: {bad} NaN or infinite value(s); fill or mask them before comparing codecs")
    if np.ptp(x) == 0:
        raise SeisfmError(f"{what}: all {x.size} values are equal ({x.flat[0]!r}); nothing to compare")
    return x


def trim(x: np.ndarray, multiple: int = TRIM_MULTIPLE, what: str = "section") -> np.ndarray:
    """Keep the leading ``n // multiple * multiple`` entries of each axis."""
    if multiple <= 1:
        return x
    small = [f"axis {i} has {n}" for i, n in enumerate(x.shape) if n < multiple]
    if small:
        raise SeisfmError(
            f"{what}: {x.shape[0]}x{x.shape[1]} is smaller than one {multiple}-sample block "
            f"({', '.join(small)}); use a larger section or turn trimming off (--no-trim)"
        )
    return x[tuple(slice(0, n // multiple * multiple) for n in x.shape)]


def lowpass(x: np.ndarray, cutoff_hz: float, sample_interval_ms: float | None, order: int = LOWPASS_ORDER) -> np.ndarray:
    """Zero-phase Butterworth low-pass along time (last axis)."""
    from scipy.signal import butter, sosfiltfilt

    if not sample_interval_ms or sample_interval_ms <= 0:
        raise SeisfmError("low-pass: needs the sample interval in ms, and the last axis must be time")
    nyquist = 500.0 / sample_interval_ms
    if not 0 < cutoff_hz < nyquist:
        raise SeisfmError(f"low-pass: cut-off {cutoff_hz:g} Hz must be between 0 and Nyquist ({nyquist:g} Hz)")
    sos = butter(order, cutoff_hz, btype="low", fs=1000.0 / sample_interval_ms, output="sos")
    padlen = 3 * (2 * len(sos) + 1)
    if x.shape[-1] <= padlen:
        raise SeisfmError(f"low-pass: {x.shape[-1]} samples are too few for the filter (needs more than {padlen})")
    return sosfiltfilt(sos, x, axis=-1).astype(np.float32)


def prepare(
    section: np.ndarray,
    sample_interval_ms: float | None = None,
    lowpass_hz: float | None = None,
    trim_multiple: int = TRIM_MULTIPLE,
) -> Prepared:
    """check -> trim -> low-pass -> standardise; see the module docstring."""
    x = check_section(section)
    shape = tuple(x.shape)
    x = trim(x, trim_multiple).astype(np.float64)
    if lowpass_hz:
        x = lowpass(x, lowpass_hz, sample_interval_ms).astype(np.float64)
    mean, std = float(x.mean()), float(x.std())
    if std == 0:
        raise SeisfmError("section: constant after trimming/low-pass; nothing to compare")
    data = ((x - mean) / std).astype(np.float32)
    return Prepared(np.ascontiguousarray(data), shape, mean, std, lowpass_hz, sample_interval_ms)
