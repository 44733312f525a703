"""The comparison as a table: Markdown and CSV in the paper's column layout, JSON for scripts."""

from __future__ import annotations

import csv
import io
import json
import math

from .compare import Comparison, Row

# (header, Row attribute, format); the paper's columns, then backend and our timing
COLUMNS = (
    ("Method", "method", "{}"),
    ("Type", "kind", "{}"),
    ("Ratio", "ratio", "{:.2f}"),
    ("Size%", "size_pct", "{:.2f}"),
    ("SNR", "snr", "{:.2f}"),
    ("PSNR", "psnr", "{:.2f}"),
    ("Amp", "amp", "{:.4f}"),
    ("Phase", "phase", "{:.2f}"),
    ("SSIM", "ssim", "{:.4f}"),
    ("Corr", "corr", "{:.4f}"),
    ("NRMS", "nrms", "{:.4f}"),
    ("MAE", "mae", "{:.4f}"),
    ("Backend", "backend", "{}"),
    ("Time ms", "time_ms", "{:.1f}"),
)


def cell(row: Row, attr: str, fmt: str) -> str:
    if not row.ok and attr not in ("method", "kind", "backend"):
        return "n/a"
    value = row.encode_s + row.decode_s if attr == "time_ms" else getattr(row, attr)
    if attr == "time_ms":
        value *= 1000.0
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return fmt.format(value)


def to_markdown(comp: Comparison) -> str:
    """Table plus footnotes: unavailable codecs with their reasons, units and conventions."""
    head = "| " + " | ".join(h for h, _, _ in COLUMNS) + " |"
    sep = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|"
    lines = [head, sep]
    for r in comp.rows:
        lines.append("| " + " | ".join(cell(r, a, f) for _, a, f in COLUMNS) + " |")
    info = comp.info()
    lines.append("")
    lines.append(
        f"Section {info['original_shape'][0]}x{info['original_shape'][1]} compared as "
        f"{info['compared_shape'][0]}x{info['compared_shape'][1]} (float32, {info['input_bytes']} bytes), "
        f"low-pass {str(info['lowpass_hz']) + ' Hz' if info['lowpass_hz'] else 'off'}, standardised. "
        "SNR/PSNR in dB (PSNR peak = max-min of input), Phase in degrees, Time = encode + decode."
    )
    for r in comp.rows:
        if not r.ok:
            lines.append(f"- {r.method}: {r.status}")
    return "\n".join(lines) + "\n"


def to_csv(comp: Comparison) -> str:
    """Every Row field, full precision, one line per codec."""
    buf = io.StringIO()
    rows = [r.as_dict() for r in comp.rows]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["method"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(comp: Comparison) -> str:
    """Strict JSON: inf/nan become strings ("inf", "nan")."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return v

    rows = [{k: clean(v) for k, v in r.as_dict().items()} for r in comp.rows]
    return json.dumps({"info": comp.info(), "rows": rows}, indent=2)
