"""Model cards (one TOML file per model in ``models/``) and :func:`get_embedder`, the one factory of embedders.

The cards live in the repository's top-level ``models/`` directory, reached through the package
path ``napari_seisfm/models`` (a symlink to ``../models``), so the same lookup works in editable
and wheel installs. Weights the user supplies are looked for, in order, in ``$SEISFM_MODELS``,
``~/.local/share/napari-seisfm/models`` and the bundled ``models/`` directory; cards placed in
the first two are listed too, so users can add their own models without touching the package.

A card's ``tokenization`` picks its family, registered with ``encoders.base.family`` by a module in
``encoders/families/`` (found by folder, like the CLI's commands); ``"a+b"`` combines models.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import tomllib  # Python >= 3.11 (see docs/models.md)
from dataclasses import fields
from importlib import resources
from pathlib import Path

from ..errors import SeisfmError
from . import families as families_pkg
from .base import FAMILIES, Embedder, Family, ModelCard
from .combined import SEPARATOR, CombinedEmbedder

DEFAULT_MODEL = "attributes"  # the embedded default until a learned model is bundled
USER_DIR = Path("~/.local/share/napari-seisfm/models")
_FIELDS = {f.name for f in fields(ModelCard)}
_TUPLES = ("patch", "window")


def models_dir() -> Path:
    """The bundled ``models/`` directory (cards and small weights)."""
    return Path(str(resources.files("napari_seisfm") / "models"))


def weight_dirs() -> list[Path]:
    """Where weights are looked for, first match wins."""
    dirs = []
    if os.environ.get("SEISFM_MODELS"):
        dirs.append(Path(os.environ["SEISFM_MODELS"]).expanduser())
    dirs.append(USER_DIR.expanduser())
    dirs.append(models_dir())
    return dirs


def read_card(path: Path) -> ModelCard:
    """One card from a TOML file; keys that are not ModelCard fields go to ``extra``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SeisfmError(f"{path}: not a readable model card ({exc})") from None
    for key in ("id", "name", "tokenization", "dim"):
        if key not in data:
            raise SeisfmError(f"{path}: model card lacks the required key {key!r}")
    known = {k: v for k, v in data.items() if k in _FIELDS and k != "extra"}
    extra = {k: v for k, v in data.items() if k not in _FIELDS}
    extra.update(data.get("extra", {}))
    for key in _TUPLES:
        if key in known:
            known[key] = tuple(int(v) for v in known[key])
    for key in ("checkpoint", "sha256"):
        if known.get(key) == "":
            known[key] = None
    return ModelCard(**known, extra=extra)


def list_cards() -> list[ModelCard]:
    """All model cards, sorted by id: the bundled ones plus any ``*.toml`` in the weight
    directories (a user card with a bundled id replaces it: first directory of
    :func:`weight_dirs` wins)."""
    cards: dict[str, ModelCard] = {}
    for d in weight_dirs():
        for p in sorted(d.glob("*.toml")) if d.is_dir() else []:
            c = read_card(p)
            cards.setdefault(c.id, c)
    return sorted(cards.values(), key=lambda c: c.id)


def card(model_id: str) -> ModelCard:
    """A card by id, or by path: a ``.toml`` card or a folder holding one (``seisfm pretrain --out``)."""
    cards = {c.id: c for c in list_cards()}
    if model_id not in cards and (by_path := card_from_path(model_id)) is not None:
        return by_path
    if model_id not in cards:
        raise SeisfmError(f"model {model_id!r}: unknown; known models: {', '.join(sorted(cards))}")
    return cards[model_id]


def card_from_path(model_id) -> ModelCard | None:
    """The card at a path (file or folder with exactly one card), or None if ``model_id`` is no path."""
    p = Path(str(model_id)).expanduser()
    if not (p.suffix == ".toml" or os.sep in str(model_id) or p.is_dir()):
        return None
    if p.is_dir():
        found = sorted(p.glob("*.toml"))
        if len(found) != 1:
            what = "no model card" if not found else f"{len(found)} model cards"
            hint = " (a pretraining run that has not finished has none: seisfm pretrain --resume)" if not found else ""
            raise SeisfmError(f"{p}: {what} (*.toml) in this folder{hint}")
        p = found[0]
    elif not p.is_file():
        raise SeisfmError(f"{p}: no such model card or folder")
    from dataclasses import replace

    return replace(read_card(p), root=str(p.parent.resolve()))


def checkpoint_path(c: ModelCard) -> Path | None:
    """Where the card's weights are (first existing), or where to put them (``$SEISFM_MODELS`` if
    set, else the user directory). None for models without weights."""
    if not c.checkpoint:
        return None
    dirs = weight_dirs()
    if c.root and (Path(c.root) / c.checkpoint).is_file():
        return Path(c.root) / c.checkpoint
    for d in dirs:
        if (d / c.checkpoint).is_file():
            return d / c.checkpoint
    return dirs[0] / c.checkpoint


def is_installed(c: ModelCard) -> bool:
    p = checkpoint_path(c)
    return p is None or p.is_file()


def install_hint(c: ModelCard) -> str:
    return f"not installed: put the checkpoint at {checkpoint_path(c)} or pass --checkpoint"


def get_embedder(
    model_id: str | None = DEFAULT_MODEL,
    checkpoint: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    spacing: tuple[float, float] | None = None,
    tiling: str | None = None,
) -> Embedder:
    """An embedder for a model id (None: the default), with its weights loaded.

    ``checkpoint`` overrides the card's file (any supported layout; no hash check then); a model
    without weights refuses one.
    ``spacing`` (trace distance along inline and crossline axes) shapes the 2.5D diagonals;
    ``tiling`` ("exact" or "coarse", default from the card, else exact): see ``vit_embedder``.
    """
    model_id = model_id or DEFAULT_MODEL
    if SEPARATOR in str(model_id) and not Path(str(model_id)).exists():  # attributes+seisfm-micro-2.5d
        if checkpoint is not None:
            raise SeisfmError(f"model {model_id!r}: a combined model takes no --checkpoint; give each part by id")
        if "" in str(model_id).split(SEPARATOR):
            raise SeisfmError(f"model {model_id!r}: an empty part; combine model ids as attributes+seisfm-micro-2.5d")
        return CombinedEmbedder(
            [
                get_embedder(m, device=device, precision=precision, batch_size=batch_size, spacing=spacing, tiling=tiling)
                for m in str(model_id).split(SEPARATOR)
            ]
        )
    c = card(model_id)
    fam = families().get(c.tokenization)
    if fam is None:
        raise SeisfmError(f"model card {c.id}: unknown tokenization {c.tokenization!r}")
    if not fam.weights:
        if checkpoint:
            raise SeisfmError(f"{checkpoint}: model {model_id!r} has no weights; drop --checkpoint")
        path = None
    elif checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise SeisfmError(f"{path}: no such checkpoint file")
    else:
        path = checkpoint_path(c)
        if path is None or not path.is_file():
            raise SeisfmError(f"model {c.id}: {install_hint(c)}")
    return fam.build(
        c,
        path,
        sha256=c.sha256 if checkpoint is None else None,
        device=device,
        precision=precision,
        batch_size=batch_size,
        spacing=spacing,
        tiling=tiling,
    )


def families() -> dict[str, Family]:
    """The embedder families by tokenization: every module in ``encoders/families/`` (but ``_*``) is
    imported once, which runs its ``@family`` registrations (``encoders.base.family``)."""
    for info in pkgutil.iter_modules(families_pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{families_pkg.__name__}.{info.name}")
    return FAMILIES
