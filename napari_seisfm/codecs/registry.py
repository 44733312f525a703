"""Codecs by name: the families in ``codecs/families/`` are found by folder (as the CLI's commands are)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..errors import SeisfmError
from . import families
from .base import FACTORIES, Codec


def load_families() -> None:
    """Import every module in ``codecs/families/`` once, which runs its ``@register`` decorators."""
    for info in pkgutil.iter_modules(families.__path__):  # sorted by name: the order of known_patterns()
        if not info.name.startswith("_"):
            importlib.import_module(f"{families.__name__}.{info.name}")


def known_patterns() -> list[str]:
    """Example names, one per family, for help texts and error messages."""
    load_families()
    return [example for _, _, example in FACTORIES]


def get_codec(name: str, **options: Any) -> Codec:
    """Build the codec called ``name`` (e.g. "quant8", "zfp-rate4", "zstd", "cosmos-CI8x8")."""
    load_families()
    for pattern, factory, _ in FACTORIES:
        m = pattern.fullmatch(name.strip())
        if m:
            return factory(m, **options)
    raise SeisfmError(f"unknown codec {name!r}; known families: {'; '.join(known_patterns())}")
