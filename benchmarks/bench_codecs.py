"""Benchmark: the full CPU codec table on the Penobscot section, against raw library calls.

    .venv/bin/python benchmarks/bench_codecs.py [--repeat 3] [--lowpass 20] [SEGY]

Prints JSON: total time of ``compare`` (goal: <= 2 s on a 2-core machine), per-codec
encode/decode/metrics times, and a baseline measured in the same run: the same codec work done with
plain library calls (numpy quantize + zstandard, lz4/cramjam/zlib/zstandard, zfpy) and the metrics
done the plain way (scikit-image SSIM/PSNR, numpy FFT, np.corrcoef). Ratios = ours / baseline.
On a machine with CUDA and nvCOMP it also times nvCOMP against the CPU libraries; otherwise it says
why that part is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "penobscot_xl1155.sgy"


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def baseline_codec(name, x):
    """The codec's work with plain library calls: no registry, no wrappers."""
    import cramjam
    import lz4.block
    import zfpy
    import zstandard

    raw = x.tobytes()
    if name.startswith("quant"):
        bits = int(name[5:])
        lo, hi = float(x.min()), float(x.max())
        step = (hi - lo) / (2**bits - 1)
        codes = np.rint((x - lo) / step).astype(np.uint8 if bits <= 8 else np.uint16)
        blob = zstandard.ZstdCompressor(level=3).compress(codes.tobytes())
        back = np.frombuffer(zstandard.ZstdDecompressor().decompress(blob), codes.dtype).reshape(x.shape)
        return back.astype(np.float32) * np.float32(step) + np.float32(lo)
    if name == "lz4":
        return np.frombuffer(lz4.block.decompress(lz4.block.compress(raw)), np.float32)
    if name == "snappy":
        return np.frombuffer(bytes(cramjam.snappy.decompress_raw(cramjam.snappy.compress_raw(raw))), np.float32)
    if name == "deflate":
        return np.frombuffer(zlib.decompress(zlib.compress(raw, 6)), np.float32)
    if name == "zstd":
        return np.frombuffer(zstandard.ZstdDecompressor().decompress(zstandard.ZstdCompressor(level=3).compress(raw)), np.float32)
    if name.startswith("zfp-rate"):
        return zfpy.decompress_numpy(zfpy.compress_numpy(x, rate=float(name[8:])))
    if name.startswith("zfp-tol"):
        return zfpy.decompress_numpy(zfpy.compress_numpy(x, tolerance=float(name[7:])))
    return None  # unavailable here (GDeflate, ANS without nvCOMP)


def baseline_metrics(x, y, dt_ms):
    """The same metrics the straightforward way (recomputing everything about x each time)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if np.array_equal(x, y):
        return
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    r = float(x.max() - x.min())
    _ = 10 * np.log10(np.sum(x64**2) / np.sum((x64 - y64) ** 2))
    _ = peak_signal_noise_ratio(x64, y64, data_range=r)
    X, Y = np.fft.rfft(x64, axis=-1), np.fft.rfft(y64, axis=-1)
    w = 1 / (1 + np.fft.rfftfreq(x.shape[-1], dt_ms / 1000) / 10.0)
    _ = np.sum(w * np.abs(np.abs(Y) - np.abs(X))) / np.sum(w * np.abs(X))
    _ = np.sum(w * np.abs(X) * np.abs(np.angle(Y * np.conj(X)))) / np.sum(w * np.abs(X))
    _ = structural_similarity(x, y, data_range=r)
    _ = np.corrcoef(x64.ravel(), y64.ravel())[0, 1]
    _ = np.sqrt(np.mean((x64 - y64) ** 2)) / np.sqrt(np.mean(x64**2)), np.mean(np.abs(x64 - y64))
    _ = np.mean(np.abs(Y) ** 2, axis=0)


def bench_nvcomp(x, repeat):
    from napari_seisfm.codecs import get_codec
    from napari_seisfm.codecs.families.lossless import nvcomp_status

    nv, reason = nvcomp_status()
    if nv is None:
        return {"skipped": f"nvCOMP throughput not measured: {reason}"}
    out = {}
    for algo in ("lz4", "snappy", "deflate", "zstd", "gdeflate", "ans"):
        entry = {}
        for backend in ("nvcomp", "cpu"):
            codec = get_codec(f"{algo}@{backend}")
            if codec.unavailable_reason():
                entry[backend] = None
                continue
            codec.decode(codec.encode(x))  # warm-up (CUDA context, kernels)
            t_enc, enc = timed(lambda: codec.encode(x), repeat)  # noqa: B023
            t_dec, y = timed(lambda: codec.decode(enc), repeat)  # noqa: B023
            assert np.array_equal(y, x)
            entry[backend] = {
                "encode_GBps": x.nbytes / t_enc / 1e9,
                "decode_GBps": x.nbytes / t_dec / 1e9,
                "ratio": x.nbytes / enc.nbytes,
            }
        if entry.get("nvcomp") and entry.get("cpu"):
            entry["encode_speedup"] = entry["nvcomp"]["encode_GBps"] / entry["cpu"]["encode_GBps"]
            entry["decode_speedup"] = entry["nvcomp"]["decode_GBps"] / entry["cpu"]["decode_GBps"]
        out[algo] = entry
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("segy", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lowpass", type=float, default=None)
    args = ap.parse_args(argv)
    if not Path(args.segy).exists():
        print(json.dumps({"skipped": f"{args.segy} not found"}))
        return 0

    from napari_seisfm.codecs import DEFAULT_CODECS, compare, get_codec
    from napari_seisfm.codecs.metrics import Reference
    from napari_seisfm.codecs.preprocess import prepare
    from napari_seisfm.codecs.section import read_section
    from napari_seisfm.io import open_cube

    with open_cube(args.segy) as cube:
        section, dt, label = read_section(cube)
    names = list(DEFAULT_CODECS)
    x = prepare(section, dt, args.lowpass).data
    compare(section, names, dt, lowpass_hz=args.lowpass)  # warm-up: imports, allocator
    ref = Reference(x, dt)
    codecs = {n: get_codec(n) for n in names}
    recon = {n: baseline_codec(n, x) for n in names}
    totals, base_totals, runs = [], [], []
    ours = {n: {"codec": [], "metrics": []} for n in names}
    base = {n: {"codec": [], "metrics": []} for n in names}
    # Interleaved: each repeat times our full table, then the baseline, then codec by codec, so a
    # busy shared machine slows both sides alike.
    for _ in range(args.repeat):
        comp = compare(section, names, dt, lowpass_hz=args.lowpass, keep_reconstructions=False)
        runs.append(comp)
        totals.append(comp.total_s)
        t0 = time.perf_counter()
        xb = prepare(section, dt, args.lowpass).data
        for n in names:
            y = baseline_codec(n, xb)
            if y is not None:
                baseline_metrics(xb, np.asarray(y, np.float32).reshape(xb.shape), dt)
        base_totals.append(time.perf_counter() - t0)
        for n in names:
            if recon[n] is None or codecs[n].unavailable_reason():
                continue
            c = codecs[n]
            t0 = time.perf_counter()
            y = c.decode(c.encode(x))
            t1 = time.perf_counter()
            ref.metrics(y)
            t2 = time.perf_counter()
            yb = np.asarray(baseline_codec(n, x), np.float32).reshape(x.shape)
            t3 = time.perf_counter()
            baseline_metrics(x, yb, dt)
            t4 = time.perf_counter()
            ours[n]["codec"].append(t1 - t0)
            ours[n]["metrics"].append(t2 - t1)
            base[n]["codec"].append(t3 - t2)
            base[n]["metrics"].append(t4 - t3)

    def med_ms(v):
        return 1000 * statistics.median(v)

    total, baseline_total = statistics.median(totals), statistics.median(base_totals)
    per_codec = {}
    for i, n in enumerate(names):
        rows = [r.rows[i] for r in runs]
        if not rows[0].ok:
            per_codec[n] = {"status": rows[0].status}
            continue
        entry = per_codec[n] = {
            "backend": rows[0].backend,
            "ratio": rows[0].ratio,
            "encode_ms": med_ms([r.encode_s for r in rows]),
            "decode_ms": med_ms([r.decode_s for r in rows]),
            "metrics_ms": med_ms([r.metrics_s for r in rows]),
        }
        if ours[n]["codec"]:
            entry["codec_ms_interleaved"] = med_ms(ours[n]["codec"])
            entry["baseline_codec_ms"] = med_ms(base[n]["codec"])
            entry["codec_ratio"] = entry["codec_ms_interleaved"] / entry["baseline_codec_ms"]
            entry["metrics_ms_interleaved"] = med_ms(ours[n]["metrics"])
            entry["baseline_metrics_ms"] = med_ms(base[n]["metrics"])
    ours_codec = sum(e.get("codec_ms_interleaved", 0) for e in per_codec.values())
    base_codec = sum(e.get("baseline_codec_ms", 0) for e in per_codec.values())
    ours_metrics = sum(e.get("metrics_ms_interleaved", 0) for e in per_codec.values())
    base_metrics = sum(e.get("baseline_metrics_ms", 0) for e in per_codec.values())
    result = {
        "input": args.segy,
        "section": label,
        "compared_shape": list(x.shape),
        "lowpass_hz": args.lowpass,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "repeat": args.repeat,
        "total_s": total,
        "goal_s": 2.0,
        "baseline_total_s": baseline_total,
        "ratio_total_vs_baseline": total / baseline_total,
        "codec_work_ms": ours_codec,
        "baseline_codec_work_ms": base_codec,
        "ratio_codec_work": ours_codec / base_codec,
        "metrics_ms": ours_metrics,
        "baseline_metrics_ms": base_metrics,
        "ratio_metrics": ours_metrics / base_metrics,
        "load_average": os.getloadavg(),
        "per_codec": per_codec,
        "gpu_nvcomp": bench_nvcomp(x, args.repeat),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
