"""Codec comparison: metrics against independent references, codecs, preprocessing, bad input, CLI."""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_seisfm.codecs import compare, get_codec
from napari_seisfm.codecs.metrics import Reference, psnr, snr
from napari_seisfm.codecs.preprocess import prepare
from napari_seisfm.codecs.table import COLUMNS, to_csv, to_json, to_markdown
from napari_seisfm.errors import SeisfmCancelled, SeisfmError

DATA = Path(__file__).parents[2] / "shared" / "data"
PENOBSCOT = DATA / "real" / "penobscot_xl1155.sgy"


def ricker_section(ntr=96, ns=256, dt_ms=4.0, seed=0) -> np.ndarray:
    """Layered synthetic: sparse reflectivity, laterally smooth, convolved with a 25 Hz Ricker."""
    rng = np.random.default_rng(seed)
    refl = np.zeros(ns)
    k = min(30, ns // 2)
    idx = rng.choice(ns, k, replace=False)
    refl[idx] = rng.standard_normal(k)
    t = (np.arange(-32, 33) * dt_ms / 1000.0) * np.pi * 25
    w = (1 - 2 * t**2) * np.exp(-(t**2))
    trace = np.convolve(refl, w, mode="same")
    shifts = np.round(4 * np.sin(np.linspace(0, 3, ntr))).astype(int)
    sec = np.stack([np.roll(trace, s) for s in shifts]) + 0.02 * rng.standard_normal((ntr, ns))
    return sec.astype(np.float32)


@pytest.fixture(scope="module")
def penobscot():
    if not PENOBSCOT.exists():
        pytest.skip(f"{PENOBSCOT} not present")
    from napari_seisfm.codecs.section import read_section
    from napari_seisfm.io import open_cube

    with open_cube(PENOBSCOT) as cube:
        section, dt, _ = read_section(cube)
    return section, dt


# ----------------------------------------------------------------------------- metrics
def test_psnr_and_ssim_match_scikit_image():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 200)).astype(np.float32)
    y = (x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32)
    rng_ = float(x.max() - x.min())
    ref = Reference(x, 4.0)
    m, _ = ref.metrics(y)
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(x, y, data_range=rng_), abs=1e-4)
    assert psnr(x, y) == pytest.approx(m["psnr"], abs=1e-9)
    assert m["ssim"] == pytest.approx(structural_similarity(x, y, data_range=rng_), abs=1e-5)
    assert m["corr"] == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1], abs=1e-9)


@pytest.mark.parametrize("a", [0.5, 0.9, 1.2])
def test_pure_scaling_is_amplitude_error_without_phase(a):
    x = ricker_section()
    x = (x - x.mean()) / x.std()
    m, _ = Reference(x, 4.0).metrics(a * x)
    assert m["amp"] == pytest.approx(abs(a - 1), rel=1e-4)
    assert m["phase"] == pytest.approx(0.0, abs=1e-3)
    assert m["snr"] == pytest.approx(-20 * math.log10(abs(1 - a)), abs=1e-3)
    assert m["nrms"] == pytest.approx(abs(1 - a), rel=1e-4)
    assert m["corr"] == pytest.approx(1.0, abs=1e-9)


def test_polarity_flip_is_180_degrees():
    x = ricker_section()
    m, _ = Reference(x, 4.0).metrics(-x)
    assert m["phase"] == pytest.approx(180.0, abs=1e-3)
    assert m["amp"] == pytest.approx(0.0, abs=1e-5)
    assert m["corr"] == pytest.approx(-1.0, abs=1e-9)


def test_known_noise_level_gives_known_snr():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 1000))
    x = ((x - x.mean()) / x.std()).astype(np.float32)
    for sigma, expected in ((0.1, 20.0), (0.01, 40.0)):
        y = x + sigma * rng.standard_normal(x.shape).astype(np.float32)
        assert snr(x, y) == pytest.approx(expected, abs=0.05)
        m, _ = Reference(x).metrics(y)
        assert m["snr"] == pytest.approx(expected, abs=0.05)
        assert m["mae"] == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.02)  # E|N(0, s)|


def test_identical_reconstruction_limits():
    x = ricker_section()
    m, spec = Reference(x, 4.0).metrics(x.copy())
    assert m["snr"] == math.inf and m["psnr"] == math.inf
    assert (m["amp"], m["phase"], m["nrms"], m["mae"], m["ssim"], m["corr"]) == (0, 0, 0, 0, 1, 1)


def test_amp_and_phase_weight_low_frequencies_more():
    """The same error energy costs more Amp when it sits at low frequencies."""
    n, dt = 512, 4.0
    t = np.arange(n) * dt / 1000
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, n)).astype(np.float32)
    low = 0.1 * np.sin(2 * np.pi * 5 * t)  # 5 Hz
    high = 0.1 * np.sin(2 * np.pi * 100 * t)  # 100 Hz, same energy
    ref = Reference(x, dt)
    m_low, _ = ref.metrics((x + low).astype(np.float32))
    m_high, _ = ref.metrics((x + high).astype(np.float32))
    assert m_low["snr"] == pytest.approx(m_high["snr"], abs=0.05)
    assert m_low["amp"] > 1.5 * m_high["amp"]
    assert m_low["phase"] > 1.5 * m_high["phase"]


def test_power_spectrum_peaks_at_wavelet_frequency():
    x = ricker_section(ns=512)
    comp = compare(x, ["quant8"], 4.0)
    peak = comp.freqs[np.argmax(comp.spectra["input"])]
    assert 12 < peak < 35  # 25 Hz Ricker, spectrum peak a little below/above with the sparse series
    assert comp.spectra["quant8"].shape == comp.freqs.shape


# ----------------------------------------------------------------------------- codecs
@pytest.mark.parametrize("name", ["lz4", "snappy", "deflate", "zstd"])
def test_lossless_reconstructs_exactly(name):
    x = ricker_section()
    codec = get_codec(name)
    assert codec.kind == "lossless" and codec.unavailable_reason() is None
    assert codec.backend.startswith(("cpu:", "gpu:"))
    enc = codec.encode(x)
    y = codec.decode(enc)
    assert y.dtype == np.float32 and np.array_equal(y.view(np.uint32), x.view(np.uint32))
    assert enc.nbytes == len(enc.payload)


@pytest.mark.parametrize("name", ["gdeflate", "ans", "lz4@nvcomp"])
def test_gpu_only_codecs_are_listed_unavailable_with_reason(name):
    from napari_seisfm.codecs.families.lossless import nvcomp_status

    if nvcomp_status()[0] is not None:
        pytest.skip("nvCOMP and CUDA present: these codecs run here")
    codec = get_codec(name)
    reason = codec.unavailable_reason()
    assert reason and ("nvCOMP" in reason or "CUDA" in reason)
    row = compare(ricker_section(), [name], 4.0).rows[0]
    assert row.status.startswith("unavailable:") and math.isnan(row.snr)
    assert "n/a" in to_markdown(compare(ricker_section(), [name], 4.0))


def test_quantization_error_bound_and_real_size():
    x = ricker_section()
    for bits in (4, 8, 12, 16):
        codec = get_codec(f"quant{bits}")
        enc = codec.encode(x)
        y = codec.decode(enc)
        step = (x.max() - x.min()) / (2**bits - 1)
        assert np.max(np.abs(y - x)) <= step / 2 * 1.001 + 1e-6
        assert enc.nbytes == len(enc.payload) + 17
    sizes = [get_codec(f"quant{b}").encode(x).nbytes for b in (4, 8, 12, 16)]
    assert sizes == sorted(sizes)


def test_quant_bits_out_of_range():
    with pytest.raises(SeisfmError, match="between 2 and 16"):
        get_codec("quant17")


def test_zfp_error_falls_as_rate_rises_and_tolerance_holds():
    x = prepare(ricker_section(), 4.0).data
    errs = []
    for r in (2, 4, 8, 16):
        c = get_codec(f"zfp-rate{r}")
        enc = c.encode(x)
        assert enc.nbytes == pytest.approx(x.size * r / 8, rel=0.05)
        errs.append(float(np.sqrt(np.mean((c.decode(enc) - x) ** 2))))
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    tol = get_codec("zfp-tol0.01")
    assert np.max(np.abs(tol.decode(tol.encode(x)) - x)) <= 0.01


# ----------------------------------------------------------------------------- Penobscot checks
def test_penobscot_quantization_about_6_db_per_bit(penobscot):
    section, dt = penobscot
    comp = compare(section, [f"quant{b}" for b in (4, 6, 8, 10, 12)], dt)
    s = {r.method: r.snr for r in comp.rows}
    slope = (s["quant12"] - s["quant8"]) / 4
    assert 5.5 < slope < 6.5, s
    assert s["quant8"] < s["quant10"] < s["quant12"]
    # the fine-step rule (step^2/12 noise) overpredicts at coarse steps: quant4 falls below the
    # 6.02 dB/bit line extrapolated down from 12 bits
    assert s["quant4"] < s["quant12"] - 8 * 6.02 - 0.5, s


def test_penobscot_full_table(penobscot):
    section, dt = penobscot
    comp = compare(
        section,
        dt and ["lz4", "zstd", "deflate", "snappy", "zfp-rate2", "zfp-rate4", "zfp-rate8", "zfp-rate16"],
        dt,
        lowpass_hz=20,
    )
    assert comp.input.shape == (576, 1472)
    rows = {r.method: r for r in comp.rows}
    for name in ("lz4", "zstd", "deflate", "snappy"):
        assert rows[name].snr == math.inf and rows[name].ratio > 1.0
    snrs = [rows[f"zfp-rate{r}"].snr for r in (2, 4, 8, 16)]
    assert snrs == sorted(snrs) and snrs[0] > 10
    assert [rows[f"zfp-rate{r}"].ratio for r in (2, 4, 8, 16)] == pytest.approx([16, 8, 4, 2], rel=0.01)


# ----------------------------------------------------------------------------- preprocessing
def test_prepare_trims_standardises_and_lowpasses():
    x = ricker_section(ntr=100, ns=300) * 1000 + 5
    p = prepare(x, 4.0, lowpass_hz=20)
    assert p.data.shape == (96, 288) and p.original_shape == (100, 300)
    assert abs(float(p.data.mean())) < 1e-5 and float(p.data.std()) == pytest.approx(1.0, abs=1e-4)
    f = np.fft.rfftfreq(288, 0.004)
    spec = np.mean(np.abs(np.fft.rfft(p.data, axis=-1)) ** 2, axis=0)
    assert spec[f > 40].sum() < 1e-3 * spec.sum()
    assert np.allclose(p.to_input_units(p.data), prepare(x, 4.0, 20, trim_multiple=32).to_input_units(p.data))


def test_lowpass_needs_time_axis_and_valid_cutoff():
    x = ricker_section()
    with pytest.raises(SeisfmError, match="sample interval"):
        prepare(x, None, lowpass_hz=20)
    with pytest.raises(SeisfmError, match="Nyquist"):
        prepare(x, 4.0, lowpass_hz=200)


# ----------------------------------------------------------------------------- bad input
def test_nan_section_is_refused():
    x = ricker_section()
    x[3, 10:20] = np.nan
    with pytest.raises(SeisfmError, match="10 NaN"):
        compare(x, ["quant8"], 4.0)


def test_constant_section_is_refused_but_dead_traces_are_fine():
    with pytest.raises(SeisfmError, match="all .* values are equal"):
        compare(np.ones((64, 64), np.float32), ["quant8"], 4.0)
    x = ricker_section()
    x[10:20] = 0.0  # dead traces
    x[40] = 7.0  # a constant trace
    comp = compare(x, ["quant8", "zfp-rate4", "zstd"], 4.0)
    for r in comp.rows:
        assert r.ok and all(math.isfinite(getattr(r, k)) for k in ("amp", "phase", "ssim", "corr", "nrms", "mae"))


def test_too_small_input():
    with pytest.raises(SeisfmError, match="smaller than one 32-sample block"):
        compare(ricker_section(ntr=20, ns=100), ["quant8"], 4.0)
    # without trimming, codecs with no block limit still run on tiny input ...
    tiny = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    comp = compare(tiny, ["quant8", "zfp-rate8", "lz4"], 4.0, trim_multiple=1)
    assert [r.ok for r in comp.rows] == [True] * 3
    assert math.isnan(comp.rows[0].ssim)  # no 7x7 SSIM window fits in 3x5
    # ... and a codec with a block says which
    codec = get_codec("zstd")
    codec.min_shape = (32, 32)
    with pytest.raises(SeisfmError, match=r"zstd: section 3x5 is smaller than its 32x32 block"):
        compare(tiny, [codec], 4.0, trim_multiple=1)


def test_unknown_and_duplicate_codecs():
    with pytest.raises(SeisfmError, match="unknown codec 'zip9'"):
        compare(ricker_section(), ["quant8", "zip9"], 4.0)
    with pytest.raises(SeisfmError, match="listed twice: quant8"):
        compare(ricker_section(), ["quant8", "quant8"], 4.0)
    with pytest.raises(SeisfmError, match="no codecs"):
        compare(ricker_section(), [], 4.0)


def test_not_a_2d_section():
    with pytest.raises(SeisfmError, match="2D section"):
        compare(np.zeros((4, 4, 4), np.float32), ["quant8"], 4.0)


# ----------------------------------------------------------------------------- compare, table
def test_progress_and_cancel():
    seen = []
    comp = compare(ricker_section(), ["quant8", "lz4"], 4.0, progress=lambda d, n, name: seen.append((d, n, name)))
    assert seen == [(0, 2, "quant8"), (1, 2, "lz4"), (2, 2, "done")]
    assert set(comp.reconstructions) == {"quant8", "lz4"}
    ev = threading.Event()

    def stop_after_first(done, total, name):
        if done == 1:  # set while the second codec starts: it finishes, the third never runs
            ev.set()

    with pytest.raises(SeisfmCancelled, match="after 2 of 3"):
        compare(ricker_section(), ["quant8", "lz4", "zstd"], 4.0, progress=stop_after_first, cancel=ev)


def test_table_formats():
    comp = compare(ricker_section(), ["quant8", "zstd", "ans"], 4.0)
    md = to_markdown(comp)
    header = md.splitlines()[0]
    assert [h.strip() for h in header.strip("|").split("|")][:12] == [
        "Method",
        "Type",
        "Ratio",
        "Size%",
        "SNR",
        "PSNR",
        "Amp",
        "Phase",
        "SSIM",
        "Corr",
        "NRMS",
        "MAE",
    ]
    assert len(COLUMNS) == 14 and "| zstd | lossless |" in md and "inf" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(comp))))
    assert [r["method"] for r in rows] == ["quant8", "zstd", "ans"]
    assert float(rows[0]["ratio"]) == pytest.approx(comp.rows[0].ratio)
    data = json.loads(to_json(comp))
    assert data["rows"][1]["snr"] == "inf" and data["info"]["compared_shape"] == [96, 256]


def test_plot_written(tmp_path):
    from napari_seisfm.codecs.plots import comparison_figure, save_figure

    comp = compare(ricker_section(), ["quant4", "quant8", "zfp-rate4", "lz4"], 4.0)
    out = save_figure(comparison_figure(comp), tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SeisfmError, match="does not exist"):
        save_figure(comparison_figure(comp), tmp_path / "nope" / "c.png")


# ----------------------------------------------------------------------------- CLI
def test_cli_on_penobscot(penobscot, tmp_path, capsys):
    from napari_seisfm.cli import main

    rc = main(
        [
            "codecs",
            str(PENOBSCOT),
            "--codecs",
            "quant8,zstd,zfp-rate4",
            "--lowpass",
            "20",
            "--out",
            str(tmp_path / "t.csv"),
            "--markdown",
            str(tmp_path / "t.md"),
            "--plot",
            str(tmp_path / "p.png"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "whole line (601 traces x 1501 samples)" in out and "| quant8 | lossy |" in out
    assert (tmp_path / "t.md").read_text().startswith("| Method | Type |")
    assert len(list(csv.DictReader((tmp_path / "t.csv").open()))) == 3
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_cli_npy_section_and_json(tmp_path, capsys):
    from napari_seisfm.cli import main

    cube = np.stack([ricker_section(ntr=64, ns=128, seed=s) for s in range(4)])  # (4 inlines, 64 xl, 128 t)
    np.save(tmp_path / "c.npy", cube)
    assert (
        main(["codecs", str(tmp_path / "c.npy"), "--section", "crossline=10", "--codecs", "quant6,lz4", "--no-trim", "--json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["info"]["compared_shape"] == [4, 128] and [r["method"] for r in data["rows"]] == ["quant6", "lz4"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--codecs", "zip9"], "unknown codec 'zip9'"),
        (["--section", "inline"], "expected inline=N"),
        (["--section", "inline=abc"], "not a number"),
        (["--codecs", "cosmos-CI8x8"], "cosmos-CI8x8 not installed"),
        (["--out", "/nonexistent/dir/t.csv"], "does not exist"),
    ],
)
def test_cli_errors_exit_2(tmp_path, capsys, argv, message):
    from napari_seisfm.cli import main

    np.save(tmp_path / "c.npy", np.stack([ricker_section(ntr=64, ns=128)] * 2))
    assert main(["codecs", str(tmp_path / "c.npy"), *argv]) == 2
    assert message in capsys.readouterr().err
