"""The optional extras (pyproject.toml), and the one line a command gets when it needs one that is missing.

``pip install napari-seisfm`` is the headless core: ``seisfm synth``, ``info``, ``embed`` with the attribute
embedder, ``search``, ``segment``, ``cluster``, ``library``, ``features``, ``check`` and ``convert`` run without
napari, Qt or torch, in a notebook or on a Dask worker. The rest comes with an extra:

- ``[napari]``: the plugin (napari, qtpy, npe2, magicgui) and ``[qt]`` a Qt binding for it;
- ``[torch]``: ViT embedders, ``seisfm pretrain``, ``seisfm wavediff``, the MAE/Cosmos codecs, the conv-head read-out;
- ``[codecs]``: ``seisfm codecs`` (lz4, zstandard, cramjam);
- ``[cluster]``: ``seisfm embed`` of many cubes on a Dask cluster (distributed);
- ``[plots]``: matplotlib figures (``seisfm bench --out``, ``seisfm demo``); [napari], [torch] and [codecs] bring it;
- ``[all]``: all of them (the README's commands install it).
"""

from __future__ import annotations

import importlib.util

from .errors import SeisfmError

# extra -> the modules it brings that the package imports (pyproject.toml's [project.optional-dependencies])
EXTRAS: dict[str, tuple[str, ...]] = {
    "napari": ("napari", "qtpy", "npe2", "magicgui"),
    "torch": ("torch", "safetensors", "tomli_w"),
    "codecs": ("lz4", "zstandard", "cramjam"),
    "cluster": ("distributed",),
    "plots": ("matplotlib",),
}
# the commands that need an extra whatever their options (checked before they start); others need one only
# for some options (`embed --model` a ViT, `segment --method conv`: [torch]; `bench --out`: [plots]) and say so when they get there
COMMANDS: dict[str, tuple[str, ...]] = {
    "pretrain": ("torch",),
    "wavediff": ("torch",),
    "codecs": ("codecs",),
    "demo": ("plots",),
}
_EXTRA_OF = {module: extra for extra, modules in EXTRAS.items() for module in modules}


def installed(module: str) -> bool:
    """Whether ``module`` (a top-level name) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
        return False


def message(extra: str, what: str, module: str) -> str:
    return f"{what} needs the [{extra}] extra ({module} is not installed): pip install 'napari-seisfm[{extra}]'"


def require(extra: str, what: str) -> None:
    """Raise a one-line SeisfmError naming ``extra`` when one of its modules is not installed."""
    for module in EXTRAS[extra]:
        if not installed(module):
            raise SeisfmError(message(extra, what, module))


def require_for_command(command: str | None) -> None:
    for extra in COMMANDS.get(command or "", ()):
        require(extra, f"seisfm {command}")


def missing_extra(exc: BaseException, what: str) -> SeisfmError | None:
    """The one-line error for an ImportError of a module an extra brings (None for anything else: a bug)."""
    if not isinstance(exc, ImportError):
        return None
    module = (exc.name or "").split(".")[0]
    extra = _EXTRA_OF.get(module)
    return SeisfmError(message(extra, what, module)) if extra else None
