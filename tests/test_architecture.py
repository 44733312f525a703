"""Layers (docs/architecture.md): every import of every module, module level and inside functions, read with ast.

- the napari glue (GLUE: the ``plugin`` sub-package: reader, writer, sample data, feature reader, widgets) may import the core and Qt/napari;
- the CLI (``cli.py``, ``commands/``) imports the core, never the glue; napari only where CLI_GUI says;
- the headless core (everything else, ``display.py`` included) imports neither Qt/napari nor the glue nor the CLI.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "napari_seisfm"
GUI = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "magicgui", "superqt", "npe2", "app_model"}
GLUE = ("napari_seisfm.plugin",)  # reader, writer, sample data, feature reader, widgets
CLI = ("napari_seisfm.cli", "napari_seisfm.commands")
# The CLI's only GUI imports, inside functions: `seisfm demo` renders its screenshots in napari and opens napari
# with --gui (the dock comes through the plugin manifest, not by importing the widget).
CLI_GUI = {("napari_seisfm.commands.demo", "napari"), ("napari_seisfm.commands.demo", "qtpy")}

CORE = [
    "napari_seisfm.cube", "napari_seisfm.io.segy", "napari_seisfm.io.sgz", "napari_seisfm.io.npy",
    "napari_seisfm.store.volume", "napari_seisfm.store.interchange", "napari_seisfm.extract", "napari_seisfm.encoders.registry",
    "napari_seisfm.encoders.attributes", "napari_seisfm.encoders.vit_embedder", "napari_seisfm.search",
    "napari_seisfm.codecs", "napari_seisfm.codecs.compare", "napari_seisfm.synthetic", "napari_seisfm.export",
    "napari_seisfm.interpretation", "napari_seisfm.bench", "napari_seisfm.display", "napari_seisfm.cli",
]


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imports(path: Path):
    """(imported module, line, inside a function or class) for every import statement in the file.

    ``from X import y`` yields X and X.y (y may be a submodule); relative imports are resolved."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    nested_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            nested_nodes.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            names = [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) in nested_nodes


def _all_imports():
    for path in sorted(PKG.rglob("*.py")):
        module = _module(path)
        for name, line, nested in _imports(path):
            yield module, f"{path.relative_to(REPO)}:{line}", name, nested


def test_the_scanner_sees_imports_inside_functions():
    found = {(m, n, nested) for m, _, n, nested in _all_imports()}
    assert ("napari_seisfm.plugin.reader", "napari", True) in found  # `import napari` inside plugin.reader._read
    assert ("napari_seisfm.plugin.reader", "napari_seisfm.display", False) in found  # `from .display import ...`


def test_layers_hold_for_every_import():
    bad = []
    for module, where, name, nested in _all_imports():
        gui = name.split(".")[0] in GUI
        how = "inside a function" if nested else "at module level"
        if _in(module, GLUE):
            if _in(name, CLI):
                bad.append(f"{where}: napari glue {module} imports the CLI ({name}) {how}")
        elif _in(module, CLI):
            if _in(name, GLUE):
                bad.append(f"{where}: CLI {module} imports napari glue ({name}) {how}")
            elif gui and not (nested and (module, name.split(".")[0]) in CLI_GUI):
                bad.append(f"{where}: CLI {module} imports {name} {how}")
        elif gui or _in(name, GLUE) or _in(name, CLI):
            bad.append(f"{where}: headless core {module} imports {name} {how}")
    assert not bad, "cross-layer imports:\n" + "\n".join(sorted(set(bad)))


def test_every_napari_entry_point_is_glue():
    manifest = (PKG / "napari.yaml").read_text()
    targets = re.findall(r"python_name:\s*([\w.]+):", manifest)
    assert targets
    assert all(_in(t, GLUE) for t in targets), [t for t in targets if not _in(t, GLUE)]


def test_core_imports_no_qt_and_no_napari():
    """The same at run time, in a fresh process: importing the core and building the CLI loads no GUI module."""
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
