"""The headless core imports neither Qt nor napari (DESIGN.md): checked in a fresh process."""

import subprocess
import sys

CORE = [
    "napari_seisfm.cube", "napari_seisfm.io.segy", "napari_seisfm.io.sgz", "napari_seisfm.io.npy",
    "napari_seisfm.features", "napari_seisfm.extract", "napari_seisfm.encoders.registry",
    "napari_seisfm.encoders.attributes", "napari_seisfm.encoders.vit_embedder", "napari_seisfm.search",
    "napari_seisfm.codecs", "napari_seisfm.codecs.compare", "napari_seisfm.synthetic", "napari_seisfm.export",
    "napari_seisfm.interpretation", "napari_seisfm.bench", "napari_seisfm.display", "napari_seisfm.cli",
]


def test_core_imports_no_qt_and_no_napari():
    script = (
        "import importlib, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "from napari_seisfm.cli import build_parser; build_parser()  # every subcommand module too\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'vispy', 'magicgui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"GUI modules imported by the core: {out.stdout.strip()}"
