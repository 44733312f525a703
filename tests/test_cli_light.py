"""The light CLI: building the `seisfm` parser (what `seisfm --help` does) imports nothing heavy, and the
names it lists (napari_seisfm.method_names) are the keys of the tables the commands run."""

from __future__ import annotations

import subprocess
import sys

from napari_seisfm import method_names


def test_building_the_whole_parser_imports_no_numpy_and_no_search_package():
    script = (
        "import sys\n"
        "from napari_seisfm.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = ('numpy', 'scipy', 'torch', 'zarr', 'napari_seisfm.search', 'napari_seisfm.quality', 'napari_seisfm.extract')\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"heavy modules imported to build the parser: {out.stdout.strip()}"


def test_method_names_are_the_keys_of_the_method_tables():
    from napari_seisfm.search import linear_segmenter
    from napari_seisfm.search.methods import DECISIONS, DEFAULT_DECISION, DEFAULT_SEGMENTER, SEGMENTERS
    from napari_seisfm.search.readouts import READOUTS

    assert tuple(DECISIONS) == method_names.DECISIONS
    assert tuple(SEGMENTERS) == method_names.SEGMENTERS
    assert tuple(READOUTS) == method_names.READOUTS
    assert (DEFAULT_DECISION, DEFAULT_SEGMENTER) == (method_names.DEFAULT_DECISION, method_names.DEFAULT_SEGMENTER)
    assert (linear_segmenter.SMOOTH, linear_segmenter.CONTEXT) == (method_names.SMOOTH, method_names.CONTEXT)


def test_bench_help_lists_what_bench_runs():
    from napari_seisfm.commands.bench import help_readouts
    from napari_seisfm.quality import suite

    assert help_readouts(method_names.SEGMENTERS) == tuple(suite.METHODS)
    assert tuple(d for d, _ in suite.DECISIONS) == method_names.DECISIONS


def test_help_shows_the_choices_and_defaults(capsys):
    from napari_seisfm.cli import main

    for command, words in (
        ("search", ["probe", "centroid", "default: probe"]),
        ("segment", ["linear", "knn", "1.5,3,6,12"]),
        ("bench", ["knn, linear, forest", "probe, mlp"]),
    ):
        try:
            main([command, "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert all(w in text for w in words), (command, text[:400])


def test_the_progress_bar_appears_on_the_first_report_and_follows_the_total(capsys):
    from napari_seisfm.progress_bar import ProgressBar

    with ProgressBar("embed", "chunk") as bar:
        assert not bar.started and capsys.readouterr().err == ""  # an error before any report prints no empty bar
        bar(0, 4)
        bar(2.5, 4, "zfp-rate4")
        assert (bar.bar.n, bar.bar.total) == (2.5, 4)
        bar(5, 8, {"loss": "0.12"})  # the total grows (a survey finds more chunks)
        assert (bar.bar.n, bar.bar.total) == (5, 8)
    err = capsys.readouterr().err
    assert "embed" in err and "zfp-rate4" in err and "loss=0.12" in err and "5/8" in err
    assert not bar.started
    with ProgressBar("sample", "step", total=3) as steps:
        for _ in range(3):
            steps.advance()
        assert (steps.bar.n, steps.bar.total) == (3, 3)
    assert "3/3" in capsys.readouterr().err
    with ProgressBar("sample", "step", total=3, disable=True) as quiet:  # --json
        quiet.advance()
    assert capsys.readouterr().err == ""
