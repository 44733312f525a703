"""Latent-masking explorer: how much of a section an MAE decoder recovers when latent tokens are lost.

The Cosmos-tokenizer seismic paper zeroes parts of a tokenizer's latent and looks at what the
decoder makes of it. Here the same question for the project's MAE: the encoder sees the whole tile
(every token, as in the ``mae-r0`` row), its output is rounded to float16, then a fraction of the
patch tokens is hidden from the decoder, which puts its learned mask token there (the MAE's own
stand-in for a token it did not get; a zero vector would be a token the decoder never saw in
training). Per-patch mean and std are given back as in the codec rows, so only the patch content is
lost. Patterns, drawn independently for every tile from one seed:

* ``random``: ``round(f N)`` tokens anywhere in the tile's sequence (all four views of a 2.5D tile);
* ``columns``: ``round(f g)`` whole token columns (trace ranges ``P`` traces wide, all times),
  the same columns in every view;
* ``blocks``: one contiguous rectangle of ``round(f g^2)`` tokens (filled row by row inside a
  ``ceil(sqrt(n))``-high box at a random place), the same in every view.

``g`` is the number of tokens along a tile side, ``N`` the tokens per tile. At least one token (or
column) stays visible, so the fraction actually masked (``masked``) can differ from the requested
one: it is what the table and the figure report. SNR and SSIM come from ``codecs.metrics`` against
the prepared section (trimmed, optionally low-passed, standardised) exactly as in the comparison.
The study also measures the patch means alone (``stats_only``, no latent at all): the floor that
the decoder has to beat, drawn as a dashed line.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SeisfmCancelled, SeisfmError
from .mae import check_fraction, decode_tiles, encode_tiles, model_input, patch_stats, split_from_mask, tile, tokenizer_2d, untile
from .metrics import Reference
from .preprocess import TRIM_MULTIPLE, Prepared, prepare

PATTERNS = ("random", "columns", "blocks")
DEFAULT_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class MaskingRow:
    pattern: str
    fraction: float  # requested
    masked: float  # fraction of the tile's tokens actually hidden
    snr: float
    ssim: float
    psnr: float
    corr: float
    nrms: float


@dataclass
class MaskingStudy:
    model_id: str
    tokenization: str
    rows: list[MaskingRow]
    prepared: Prepared
    tiles: int
    tokens_per_tile: int
    seconds: float = 0.0
    stats_only: dict[str, float] = field(default_factory=dict)  # metrics of the patch means alone
    reconstructions: dict[tuple[str, float], np.ndarray] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "tokenization": self.tokenization,
            "tiles": self.tiles,
            "tokens_per_tile": self.tokens_per_tile,
            "compared_shape": list(self.prepared.data.shape),
            "stats_only_snr": self.stats_only.get("snr"),
            "stats_only_ssim": self.stats_only.get("ssim"),
            "total_s": self.seconds,
        }


def pattern_mask(pattern: str, fraction: float, n_tiles: int, views: int, g: int, gen):
    """Bool ``(n_tiles, views * g * g)``, True = hidden; the same count in every tile."""
    import torch

    n_tok = views * g * g
    if pattern == "random":
        k = min(int(round(fraction * n_tok)), n_tok - 1)
        order = torch.rand(n_tiles, n_tok, generator=gen).argsort(dim=1)
        mask = torch.zeros(n_tiles, n_tok, dtype=torch.bool)
        mask.scatter_(1, order[:, :k], True)
        return mask
    grid = torch.zeros(n_tiles, g, g, dtype=torch.bool)  # (time row, trace column) of one view
    if pattern == "columns":
        k = min(int(round(fraction * g)), g - 1)
        cols = torch.rand(n_tiles, g, generator=gen).argsort(dim=1)[:, :k]
        grid.scatter_(2, cols[:, None, :].expand(-1, g, -1), True)
    elif pattern == "blocks":
        n = min(int(round(fraction * g * g)), g * g - 1)
        if n:
            h = min(g, math.ceil(math.sqrt(n)))
            w = math.ceil(n / h)
            r0 = torch.randint(0, g - h + 1, (n_tiles,), generator=gen)
            c0 = torch.randint(0, g - w + 1, (n_tiles,), generator=gen)
            box = torch.zeros(h * w, dtype=torch.bool)
            box[:n] = True
            box = box.reshape(h, w)
            for i in range(n_tiles):
                grid[i, r0[i] : r0[i] + h, c0[i] : c0[i] + w] = box
    else:
        raise SeisfmError(f"masking pattern {pattern!r}: use {', '.join(PATTERNS)}")
    return grid.reshape(n_tiles, 1, g * g).expand(-1, views, -1).reshape(n_tiles, n_tok).clone()


def parse_patterns(text: str | Sequence[str]) -> list[str]:
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    bad = [p for p in items if p not in PATTERNS]
    if bad or not items:
        raise SeisfmError(f"masking patterns {','.join(bad) or text!r}: use {', '.join(PATTERNS)}")
    return list(dict.fromkeys(items))


def masking_study(
    section: np.ndarray,
    mae,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    patterns: Sequence[str] = PATTERNS,
    sample_interval_ms: float | None = None,
    *,
    lowpass_hz: float | None = None,
    trim_multiple: int = TRIM_MULTIPLE,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Any = None,
    keep_reconstructions: bool = False,
) -> MaskingStudy:
    """SNR / SSIM of the section decoded with each fraction of latent tokens hidden, per pattern."""
    import torch

    t0 = time.perf_counter()
    fractions = [check_fraction(f, "masking fraction") for f in fractions]
    if not fractions:
        raise SeisfmError("masking: no fractions given")
    patterns = parse_patterns(list(patterns))
    if isinstance(mae, str):
        from .mae import load_mae

        mae = load_mae(mae)
    prepared = prepare(section, sample_interval_ms, lowpass_hz, trim_multiple)
    x = prepared.data
    ref = Reference(x, sample_interval_ms)
    w, p = mae.cfg.window, mae.cfg.patch
    g = w // p
    views = mae.encoder.patch_embed.n_views
    tiles, grid = tile(x, w)
    latent = encode_tiles(mae, model_input(mae, tiles))
    mean, std = patch_stats(mae, tiles)
    mean, std = mean.half(), std.half()
    n = len(tiles)
    jobs = [(pat, f) for pat in patterns for f in fractions]
    rows: list[MaskingRow] = []
    recons = {}
    for i, (pat, f) in enumerate(jobs):
        if cancel is not None and cancel.is_set():
            raise SeisfmCancelled(f"masking study stopped after {i} of {len(jobs)} runs")
        if progress:
            progress(i, len(jobs), f"{pat} {f:g}")
        gen = torch.Generator().manual_seed(seed * 1000 + PATTERNS.index(pat))
        mask = pattern_mask(pat, f, n, views, g, gen)
        keep, restore = split_from_mask(mask)
        kept = torch.cat([latent[:, :1], torch.gather(latent[:, 1:], 1, keep[..., None].expand(-1, -1, latent.shape[2]))], 1)
        y = untile(decode_tiles(mae, kept, restore, mean, std), grid, x.shape)
        m, _ = ref.metrics(y)
        rows.append(MaskingRow(pat, f, float(mask.float().mean()), m["snr"], m["ssim"], m["psnr"], m["corr"], m["nrms"]))
        if keep_reconstructions:
            recons[(pat, f)] = y
    base = tokenizer_2d(mae).unpatchify(mean.float().expand(-1, -1, p * p)).transpose(1, 2).contiguous().numpy()
    stats_only, _ = ref.metrics(untile(base, grid, x.shape))
    if progress:
        progress(len(jobs), len(jobs), "done")
    return MaskingStudy(
        getattr(mae, "model_id", "mae"),
        mae.cfg.tokenization,
        rows,
        prepared,
        n,
        int(mae.encoder.n_tokens),
        time.perf_counter() - t0,
        stats_only,
        recons,
    )


# ---------------------------------------------------------------------------- output
def to_markdown(study: MaskingStudy) -> str:
    lines = ["| Pattern | Fraction | Masked | SNR | PSNR | SSIM | Corr | NRMS |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in study.rows:
        lines.append(
            f"| {r.pattern} | {r.fraction:g} | {r.masked:.3f} | {r.snr:.2f} | {r.psnr:.2f} | {r.ssim:.4f} | "
            f"{r.corr:.4f} | {r.nrms:.4f} |"
        )
    i = study.info()
    lines += [
        "",
        f"Model {i['model']} ({i['tokenization']}): {i['tiles']} tiles of {i['tokens_per_tile']} tokens, "
        f"section compared as {i['compared_shape'][0]}x{i['compared_shape'][1]}, standardised; "
        "encoder sees every token, hidden latent tokens are replaced by the decoder's mask token; "
        "patch mean/std given. SNR/PSNR in dB.",
        f"Patch means alone (no latent): SNR {study.stats_only.get('snr', float('nan')):.2f} dB, "
        f"SSIM {study.stats_only.get('ssim', float('nan')):.4f}.",
    ]
    return "\n".join(lines) + "\n"


def to_csv(study: MaskingStudy) -> str:
    import csv
    import io
    from dataclasses import asdict

    buf = io.StringIO()
    rows = [asdict(r) for r in study.rows]
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def to_json(study: MaskingStudy) -> str:
    import json
    from dataclasses import asdict

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return v

    return json.dumps({"info": study.info(), "rows": [{k: clean(v) for k, v in asdict(r).items()} for r in study.rows]}, indent=2)


def masking_figure(study: MaskingStudy, fig=None):
    """Two panels, SNR and SSIM against the fraction of latent tokens masked, one line per pattern."""
    from matplotlib.figure import Figure

    fig = fig or Figure(figsize=(8, 3.2), layout="constrained")
    fig.clear()
    ax_snr, ax_ssim = fig.subplots(1, 2)
    for pat in dict.fromkeys(r.pattern for r in study.rows):
        rs = sorted((r for r in study.rows if r.pattern == pat), key=lambda r: r.masked)
        xs = [r.masked for r in rs]
        ax_snr.plot(xs, [r.snr for r in rs], marker="o", ms=4, label=pat)
        ax_ssim.plot(xs, [r.ssim for r in rs], marker="o", ms=4, label=pat)
    for ax, key in ((ax_snr, "snr"), (ax_ssim, "ssim")):
        if key in study.stats_only:
            ax.axhline(study.stats_only[key], color="k", ls="--", lw=0.8, label="patch means alone")
    for ax, label in ((ax_snr, "SNR (dB)"), (ax_ssim, "SSIM")):
        ax.set(xlabel="fraction of latent tokens masked", ylabel=label, title=f"{study.model_id}: {label} vs masking")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig
