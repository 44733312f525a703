"""Layers (docs/architecture.md): every import of every module, module level and inside functions, read with ast.

- the napari glue (GLUE: the ``plugin`` sub-package: reader, writer, sample data, feature reader, widgets) may import the core and Qt/napari;
- the CLI (``cli.py``, ``commands/``) imports the core, never the glue; napari only where CLI_GUI says;
- the headless core (everything else, ``display.py`` included) imports neither Qt/napari nor the glue nor the CLI.

And over the same imports: no import cycle (folder discovery of commands, codecs and embedder families
included), and no private name of one module imported or read by another.
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
    "napari_seisfm.cube",
    "napari_seisfm.io.segy",
    "napari_seisfm.io.sgz",
    "napari_seisfm.io.npy",
    "napari_seisfm.store.volume",
    "napari_seisfm.store.interchange",
    "napari_seisfm.extract",
    "napari_seisfm.encoders.registry",
    "napari_seisfm.encoders.attributes",
    "napari_seisfm.encoders.vit_embedder",
    "napari_seisfm.search",
    "napari_seisfm.codecs",
    "napari_seisfm.codecs.compare",
    "napari_seisfm.synthetic",
    "napari_seisfm.export",
    "napari_seisfm.interpretation",
    "napari_seisfm.quality",
    "napari_seisfm.display",
    "napari_seisfm.cli",
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


# -- import cycles and private names ----------------------------------------------------------------

MODULES = {_module(p) for p in PKG.rglob("*.py")}
# Modules that import every module of a folder at run time (pkgutil.iter_modules + importlib): the graph
# gets an edge to each module found there, so a registration by folder cannot hide a cycle.
DISCOVERS = {
    "napari_seisfm.cli": "napari_seisfm.commands",
    "napari_seisfm.codecs.registry": "napari_seisfm.codecs.families",
    "napari_seisfm.encoders.registry": "napari_seisfm.encoders.families",
}
# Exceptions to the two checks below: none (issue 25 emptied them). Nothing may be added without a reason here.
KNOWN_CYCLES: list[set[str]] = []
KNOWN_PRIVATE: set[tuple[str, str]] = set()


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def _targets(module: str, path: Path):
    """Package modules imported by the file (module- and function-level imports alike).

    ``from P import x`` imports the submodule P.x when there is one, else (a name defined in P) P itself;
    importing a module from outside its package also runs the package's ``__init__``: an edge to it too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            names = subs + ([base] if len(subs) < len(node.names) else [])
        else:
            continue
        for name in names:
            if name not in MODULES:
                continue
            yield name
            yield from (p for p in _ancestors(name) if p in MODULES and p not in _ancestors(module) and p != module)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for path in sorted(PKG.rglob("*.py")):
        module = _module(path)
        for target in _targets(module, path):
            if target != module:
                graph[module].add(target)
        source = path.read_text()
        if "iter_modules(" in source:
            assert module in DISCOVERS, f"{module} finds modules by folder: name the folder in DISCOVERS"
            folder = DISCOVERS[module]
            graph[module] |= {m for m in MODULES if m.rpartition(".")[0] == folder}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(comp)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_has_discovery_and_function_level_edges():
    graph = _graph()
    assert "napari_seisfm.codecs.families.zfp" in graph["napari_seisfm.codecs.registry"]  # found by folder
    assert "napari_seisfm.encoders.families.vit" in graph["napari_seisfm.encoders.registry"]
    assert "napari_seisfm.commands.search" in graph["napari_seisfm.cli"]
    # a function-level import: the vit family imports the ViT embedder inside its builder
    assert "napari_seisfm.encoders.vit_embedder" in graph["napari_seisfm.encoders.families.vit"]


def test_no_import_cycle():
    """No module imports itself through others (module- and function-level imports, folder discovery)."""
    cycles = [c for c in _cycles(_graph()) if c not in KNOWN_CYCLES]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(sorted(c)) for c in cycles)


def _private_uses(path: Path):
    """(name, 'where: what') for each private name (``_x``, not ``__x__``) defined in another module that
    this file imports, or reads off a module it imported. Private *modules* (``widgets/_jobs.py``) are how a
    package splits its own code and are not counted; a private name inside one is."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    bound = {}  # local name -> package module it refers to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base not in MODULES:
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in MODULES:
                    bound[a.asname or a.name] = full
                elif a.name.startswith("_") and not a.name.startswith("__") and base != module:
                    yield full, f"{path.relative_to(REPO)}:{node.lineno}: imports {full}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in MODULES and a.asname:
                    bound[a.asname] = a.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            full = f"{bound[node.value.id]}.{node.attr}"
            if bound[node.value.id] != module and full not in MODULES:
                yield full, f"{path.relative_to(REPO)}:{node.lineno}: reads {full}"


def test_the_private_name_scanner_sees_imports_and_attributes(tmp_path):
    src = PKG / "search" / "zz_probe_private.py"
    src.write_text(
        "from ..extract import _x, mirror\nfrom .. import extract\nextract._y\nextract.__doc__\n"
        "from ..plugin.widgets import _notify\nfrom ..plugin.widgets._jobs import background_job\n"
    )
    try:
        found = {full for full, _ in _private_uses(src)}
    finally:
        src.unlink()
    assert found == {"napari_seisfm.extract._x", "napari_seisfm.extract._y"}


def test_no_private_name_is_imported_across_modules():
    bad = [
        what
        for path in sorted(PKG.rglob("*.py"))
        for full, what in _private_uses(path)
        if (_module(path), full) not in KNOWN_PRIVATE
    ]
    assert not bad, "private names used across modules (make them public or keep them in their module):\n" + "\n".join(bad)


LONG_MODULES = {"napari_seisfm/synthetic.py"}  # the synthetic geology: one generator, read top to bottom
MAX_LINES = 600


def test_no_module_is_over_600_lines():
    """One room per concept: a module that grows past this is split by what it is about."""
    long = [
        f"{p.relative_to(REPO)}: {n}"
        for p in sorted(PKG.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES and str(p.relative_to(REPO)) not in LONG_MODULES
    ]
    assert not long, "modules over 600 lines:\n" + "\n".join(long)
