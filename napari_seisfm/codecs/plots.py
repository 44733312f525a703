"""Figures for a comparison: average power spectra and ratio-versus-quality trade-off curves.

Built on ``matplotlib.figure.Figure`` directly (no pyplot, no global backend), so the CLI saves them
with the Agg canvas and the widget embeds the same figure in a Qt canvas.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from ..errors import SeisfmError
from .compare import Comparison


def family(name: str, kind: str = "lossy") -> str:
    """Group rows into curves: quant4..16 -> "quant", zfp-rate2..16 -> "zfp-rate", cosmos CI / DI."""
    if kind == "lossless":
        return "lossless"
    if name.startswith("cosmos-"):
        return "cosmos-" + name[7:9]
    return re.sub(r"[0-9.]+(e-?[0-9]+)?$", "", name)


def comparison_figure(comp: Comparison, fig: Figure | None = None) -> Figure:
    """Three panels: power spectra (dB), Ratio vs SNR, Ratio vs SSIM."""
    fig = fig or Figure(figsize=(13, 4.2), layout="constrained")
    fig.clear()
    ax_s, ax_snr, ax_ssim = fig.subplots(1, 3)
    f = comp.freqs
    ref = comp.spectra["input"]
    top = float(ref.max()) or 1.0

    def db(p):
        return 10 * np.log10(np.maximum(p, 1e-30) / top)

    ax_s.plot(f, db(ref), color="black", lw=2, label="input")
    lossy = [r for r in comp.rows if r.ok and r.kind != "lossless"]
    for r in lossy:
        ax_s.plot(f, db(comp.spectra[r.method]), lw=0.9, label=r.method)
    unit = "Hz" if comp.prepared.sample_interval_ms else "cycles/sample"
    ax_s.set(xlabel=f"frequency ({unit})", ylabel="power (dB re input max)", title="Average power spectra")
    ax_s.set_ylim(bottom=max(-120.0, float(db(ref).min()) - 10))
    ax_s.legend(fontsize=6, ncol=2)

    groups: dict[str, list] = {}
    for r in comp.rows:
        if r.ok:
            groups.setdefault(family(r.method, r.kind), []).append(r)
    for ax, attr, label in ((ax_snr, "snr", "SNR (dB)"), (ax_ssim, "ssim", "SSIM")):
        for fam, rows in groups.items():
            pts = sorted((r.ratio, getattr(r, attr)) for r in rows if math.isfinite(getattr(r, attr)))
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", ms=4, label=fam)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="compression ratio", ylabel=label, title=f"Ratio vs {label}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if any(r.ok and r.kind == "lossless" for r in comp.rows):
        ax_snr.annotate("lossless rows: SNR = inf (not drawn)", (0.02, 0.02), xycoords="axes fraction", fontsize=7)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write with the Agg canvas (works headless), atomically; an OSError is one line naming ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..io.output import atomic_output

    path = Path(path)
    if not path.parent.exists():
        raise SeisfmError(f"{path}: folder {path.parent} does not exist")
    FigureCanvasAgg(fig)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return path
