"""How far a reconstruction ``y`` is from the (standardised) input ``x``.

All arrays are 2D (trace, sample) with time along the last axis. Definitions (sums run over every
sample; ``X_k``, ``Y_k`` are the per-trace real FFTs along time at frequency ``f_k``):

* ratio  = input bytes (float32) / stored bytes;  size% = 100 / ratio
* SNR    = 10 log10( sum x^2 / sum (x - y)^2 )  [dB; x has zero mean, so this is var/MSE]
* PSNR   = 10 log10( R^2 / MSE ), peak R = max(x) - min(x) of the input  [dB; scikit-image's
  ``peak_signal_noise_ratio(x, y, data_range=R)``]
* Amp    = sum_k w_k | |Y_k| - |X_k| |  /  sum_k w_k |X_k|   (relative amplitude-spectrum error)
* Phase  = sum_k w_k |X_k| |angle(Y_k conj X_k)|  /  sum_k w_k |X_k|   [degrees; amplitude-weighted
  so that empty frequency bins do not count]
  with low-frequency weights ``w_k = 1 / (1 + f_k / f_ref)``, ``f_ref`` = 10 Hz (or 0.04 cycles per
  sample when the last axis is not time: 10 Hz at 4 ms).
* SSIM   = scikit-image's ``structural_similarity`` defaults (7x7 uniform window, K1 0.01, K2 0.03,
  sample covariance) with data_range R (nan for sections under 7x7); computed here with the input's filtered statistics
  cached (same formula, checked against scikit-image in the tests) because it runs once per row.
* Corr   = Pearson correlation;  NRMS = rms(x - y) / rms(x);  MAE = mean |x - y|
* power spectrum = mean over traces of |X_k|^2.

Identical arrays give SNR = PSNR = inf, Amp = Phase = NRMS = MAE = 0, SSIM = Corr = 1.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy.ndimage import uniform_filter

F_REF_HZ = 10.0
F_REF_CYCLES = 0.04
SSIM_WIN, SSIM_K1, SSIM_K2 = 7, 0.01, 0.03
METRICS = ("snr", "psnr", "amp", "phase", "ssim", "corr", "nrms", "mae")


def frequencies(n_samples: int, sample_interval_ms: float | None) -> np.ndarray:
    """rfft frequencies: Hz when the sample interval is known, else cycles per sample."""
    d = sample_interval_ms / 1000.0 if sample_interval_ms else 1.0
    return np.fft.rfftfreq(n_samples, d)


def low_frequency_weights(freqs: np.ndarray, sample_interval_ms: float | None) -> np.ndarray:
    f_ref = F_REF_HZ if sample_interval_ms else F_REF_CYCLES
    return 1.0 / (1.0 + freqs / f_ref)


def _rfft(x: np.ndarray) -> np.ndarray:
    # single precision: 5x faster than float64 here and far below the table's printed precision
    return scipy.fft.rfft(np.asarray(x, dtype=np.float32), axis=-1, workers=-1)


def power_spectrum(x: np.ndarray) -> np.ndarray:
    """Mean over traces of |FFT|^2 along time."""
    return np.mean(np.abs(_rfft(x)) ** 2, axis=0)


def _db(num: float, den: float) -> float:
    if den == 0:
        return float("inf")
    if num == 0:
        return float("-inf")
    return float(10.0 * np.log10(num / den))


def snr(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return _db(float(np.sum(x * x)), float(np.sum((x - y) ** 2)))


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    peak = float(x.max() - x.min())
    return _db(peak * peak, float(np.mean((x - y) ** 2)))


def nrms(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return float(np.sqrt(np.mean((x - y) ** 2)) / np.sqrt(np.mean(x * x)))


def mae(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(x, np.float64) - y)))


def corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation (nan when either array is constant)."""
    a = np.asarray(x, np.float64).ravel()
    b = np.asarray(y, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else float("nan")


class Reference:
    """The input section with everything the metrics need from it computed once."""

    def __init__(self, x: np.ndarray, sample_interval_ms: float | None = None):
        self.x32 = np.ascontiguousarray(x, dtype=np.float32)
        self.x = self.x32.astype(np.float64)
        self.sample_interval_ms = sample_interval_ms
        self.freqs = frequencies(self.x.shape[-1], sample_interval_ms)
        self.weights = low_frequency_weights(self.freqs, sample_interval_ms)
        self.X = _rfft(self.x)
        self.absX = np.abs(self.X)
        self.wabsX_sum = float(np.sum(self.weights * self.absX))
        self.power = np.mean(self.absX.astype(np.float64) ** 2, axis=0)
        self.energy = float(np.dot(self.x.ravel(), self.x.ravel()))
        self.xc = (self.x - self.x.mean()).ravel()  # centred, for the correlation
        self.sxx = float(np.dot(self.xc, self.xc))
        self.range = float(self.x.max() - self.x.min())
        # SSIM statistics of x, in float32 like scikit-image does for float32 input
        self.ux = uniform_filter(self.x32, SSIM_WIN)
        self.vx_raw = uniform_filter(self.x32 * self.x32, SSIM_WIN) - self.ux * self.ux

    def amp_phase(self, Y: np.ndarray) -> tuple[float, float]:
        if self.wabsX_sum == 0:
            return float("nan"), float("nan")
        amp = float(np.sum(self.weights * np.abs(np.abs(Y) - self.absX)) / self.wabsX_sum)
        dphi = np.abs(np.angle(Y * np.conj(self.X)))
        phase = float(np.degrees(np.sum(self.weights * self.absX * dphi) / self.wabsX_sum))
        return amp, phase

    def ssim(self, y: np.ndarray) -> float:
        # scikit-image's structural_similarity formula; in-place steps keep it to a few passes
        y = np.asarray(y, dtype=np.float32)
        if min(y.shape) < SSIM_WIN:  # scikit-image refuses too; undefined, not an error of the codec
            return float("nan")
        n = SSIM_WIN**self.x.ndim
        cov_norm = np.float32(n / (n - 1.0))
        c1, c2 = np.float32((SSIM_K1 * self.range) ** 2), np.float32((SSIM_K2 * self.range) ** 2)
        ux = self.ux
        uy = uniform_filter(y, SSIM_WIN)
        vy = uniform_filter(y * y, SSIM_WIN)
        vy -= uy * uy
        vxy = uniform_filter(self.x32 * y, SSIM_WIN)
        vxy -= ux * uy
        num = ux * uy
        num *= 2
        num += c1  # 2 ux uy + C1
        vxy *= 2 * cov_norm
        vxy += c2  # 2 vxy + C2
        num *= vxy
        den = ux * ux
        den += uy * uy
        den += c1  # ux^2 + uy^2 + C1
        vy += self.vx_raw
        vy *= cov_norm
        vy += c2  # vx + vy + C2
        den *= vy
        num /= den
        pad = (SSIM_WIN - 1) // 2
        return float(num[pad:-pad, pad:-pad].mean(dtype=np.float64))

    def corr(self, y: np.ndarray) -> float:
        """Pearson correlation with the cached centred input (sum of xc is 0, so y need not be centred)."""
        yf = y.ravel()
        yc = yf - yf.mean()
        den = np.sqrt(self.sxx * float(np.dot(yc, yc)))
        return float(np.dot(self.xc, yf) / den) if den > 0 else float("nan")

    def metrics(self, y: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """All metrics of ``y`` against the input, and the power spectrum of ``y``."""
        y32 = np.ascontiguousarray(y, dtype=np.float32)
        if y32.shape != self.x.shape:
            raise ValueError(f"reconstruction shape {y32.shape} != input shape {self.x.shape}")
        if np.array_equal(y32, self.x32):  # exact: the values below are the definitions' limits
            return {
                "snr": np.inf,
                "psnr": np.inf,
                "amp": 0.0,
                "phase": 0.0,
                "ssim": 1.0,
                "corr": 1.0,
                "nrms": 0.0,
                "mae": 0.0,
            }, self.power.copy()
        y = y32.astype(np.float64)
        err = self.x - y
        sse = float(np.dot(err.ravel(), err.ravel()))
        Y = _rfft(y32)
        amp, phase = self.amp_phase(Y)
        out = {
            "snr": _db(self.energy, sse),
            "psnr": _db(self.range**2, sse / err.size),
            "amp": amp,
            "phase": phase,
            "ssim": self.ssim(y32),
            "corr": self.corr(y),
            "nrms": float(np.sqrt(sse / self.energy)) if self.energy else float("nan"),
            "mae": float(np.mean(np.abs(err))),
        }
        return out, np.mean(np.abs(Y).astype(np.float64) ** 2, axis=0)
