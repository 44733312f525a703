"""`seisfm codecs INPUT`: compare how quantization, lossless codecs, ZFP and Cosmos tokenizers
reconstruct one section (the table of the Cosmos-tokenizer seismic paper)."""

from __future__ import annotations

HELP = """\
Codec names: quant4..quant16, lz4, snappy, deflate, zstd, gdeflate, ans (append @cpu or @nvcomp to
force a backend), zfp-rate<R>, zfp-tol<T>, zfp-prec<P>, cosmos-CI8x8, cosmos-CI16x16,
cosmos-DI8x8, cosmos-DI16x16. "default" stands for the built-in list, "cosmos" for the four
tokenizers. Cosmos tokenizers are TorchScript programs (encoder.jit, decoder.jit) that you download
yourself into DIR/Cosmos-Tokenizer-<variant>/; they are loaded, i.e. run as code, only from the
--cosmos-dir you pass.

--mae MODEL (a model id, card or seisfm pretrain folder whose weights hold the MAE decoder) adds
the rows mae-r0 (every token kept) and mae-r<training ratio>. --masking [FRACTIONS] --mae MODEL
runs the latent-masking explorer instead of the table: SNR and SSIM of the section decoded with
each fraction of latent tokens masked (random, whole token columns, contiguous blocks)."""


def register(sub):
    import argparse

    p = sub.add_parser(
        "codecs",
        help="compare codecs (quantization, lossless, ZFP, Cosmos tokenizers) on one section",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help=".sgy/.segy/.sgz/.npy file")
    p.add_argument("--section", help="inline=N, crossline=N or time=T (default: whole 2D line, middle inline of a 3D cube)")
    p.add_argument("--codecs", default="default", help="comma-separated codec names (default: %(default)s)")
    p.add_argument("--lowpass", type=float, metavar="HZ", help="zero-phase low-pass below HZ first (the paper: 20)")
    p.add_argument("--no-trim", action="store_true", help="do not trim the section to multiples of 32")
    p.add_argument("--cosmos-dir", metavar="DIR", help="folder with Cosmos-Tokenizer-<variant>/encoder.jit, decoder.jit")
    p.add_argument("--mae", metavar="MODEL", help="add the rows of an MAE trained by seisfm pretrain (id, card or folder)")
    p.add_argument("--mae-ratios", metavar="LIST", help="mask ratios of the MAE rows (default: 0 and the model's training ratio)")
    p.add_argument(
        "--masking",
        nargs="?",
        const="default",
        metavar="FRACTIONS",
        help="latent-masking explorer (needs --mae): fractions in [0, 1), comma-separated (default 0,0.1,...,0.9)",
    )
    p.add_argument("--patterns", default="random,columns,blocks", help="masking patterns (default: %(default)s)")
    p.add_argument("--device", default=None, help="torch device for the MAE (default: cuda if present, else cpu)")
    p.add_argument("--out", metavar="CSV", help="write the table as CSV")
    p.add_argument("--markdown", metavar="MD", help="write the table as Markdown")
    p.add_argument("--plot", metavar="PNG", help="write power spectra and ratio-vs-metric curves")
    p.add_argument("--json", action="store_true", help="print JSON instead of the Markdown table")
    p.set_defaults(run=run)


def check_domain(spec: str | None, cube) -> None:
    """``depth=`` on a time cube (or ``time=`` on a depth cube) names the wrong axis: refuse, do not guess."""
    from ..errors import SeisfmError

    key = (spec or "").partition("=")[0].strip().lower()
    domain = cube.geometry.domain
    if key in ("time", "depth") and domain in ("time", "depth") and key != domain:
        raise SeisfmError(
            f"--section {spec!r}: {cube.path or 'the cube'} is in {domain} ({cube.geometry.sample_unit}); "
            f"use {domain}={spec.partition('=')[2].strip()}"
        )


def run(args) -> int:
    from pathlib import Path

    from ..codecs import expand_codecs
    from ..codecs.mae import compare_with_mae, parse_fractions
    from ..codecs.section import read_section
    from ..codecs.table import to_csv, to_json, to_markdown
    from ..errors import SeisfmError
    from ..io import open_cube
    from ..progress_bar import ProgressBar

    for opt in ("out", "markdown", "plot"):
        path = getattr(args, opt)
        if path and not Path(path).parent.exists():
            raise SeisfmError(f"{path}: folder {Path(path).parent} does not exist")
        if path and Path(path).is_dir():
            raise SeisfmError(f"{path}: is a folder; give a file name for --{opt}")
    ratios = parse_fractions(args.mae_ratios, "--mae-ratios") if args.mae_ratios else None
    if (args.masking or ratios) and not args.mae:
        raise SeisfmError(f"--{'masking' if args.masking else 'mae-ratios'}: needs --mae MODEL (an MAE with a decoder)")
    if args.masking:
        from ..codecs.mae_masking import DEFAULT_FRACTIONS, parse_patterns

        fractions = list(DEFAULT_FRACTIONS) if args.masking == "default" else parse_fractions(args.masking)
        patterns = parse_patterns(args.patterns)
    with open_cube(args.input) as cube:
        check_domain(args.section, cube)
        section, dt, label = read_section(cube, args.section)
    if args.masking:
        return run_masking(args, section, dt, label, fractions, patterns)
    names = expand_codecs(args.codecs, args.cosmos_dir)
    with ProgressBar("codecs", "codec", disable=None) as bar:
        comp = compare_with_mae(
            section,
            names,
            dt,
            mae_model=args.mae,
            mae_ratios=ratios,
            device=args.device,
            lowpass_hz=args.lowpass,
            trim_multiple=1 if args.no_trim else 32,
            cosmos_dir=args.cosmos_dir,
            progress=bar,
        )
    from ..codecs.plots import comparison_figure

    return write_outputs(args, label, comp, comp.total_s, to_csv, to_markdown, to_json, comparison_figure)


def write_outputs(args, label, result, seconds, to_csv, to_markdown, to_json, figure) -> int:
    """--out (CSV), --markdown, --plot, then the table (or --json) on stdout: shared by both tables."""
    import sys

    from ..codecs.plots import save_figure
    from ..io.output import atomic_output

    for path, text in ((args.out, lambda: to_csv(result)), (args.markdown, lambda: to_markdown(result))):
        if path:
            with atomic_output(path) as tmp:
                tmp.write_text(text())
    if args.plot:
        save_figure(figure(result), args.plot)  # atomic, an OSError one line
    if args.json:
        print(to_json(result))
    else:
        print(f"{args.input}: {label}")
        print(to_markdown(result), end="")
        print(f"total {seconds:.2f} s", file=sys.stderr)
    return 0


def run_masking(args, section, dt, label, fractions, patterns) -> int:
    """The latent-masking explorer: a table of SNR / SSIM per pattern and fraction, optional plot."""

    from ..codecs.mae import load_mae
    from ..codecs.mae_masking import masking_figure, masking_study, to_csv, to_json, to_markdown
    from ..progress_bar import ProgressBar

    mae = load_mae(args.mae, args.device)
    with ProgressBar("masking", "run", disable=None) as bar:
        study = masking_study(
            section, mae, fractions, patterns, dt, lowpass_hz=args.lowpass, trim_multiple=1 if args.no_trim else 32, progress=bar
        )
    return write_outputs(args, label, study, study.seconds, to_csv, to_markdown, to_json, masking_figure)
