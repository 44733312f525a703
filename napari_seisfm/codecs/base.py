"""One interface for every way of shrinking a section, and the decorator that registers codec families.

A codec turns a 2D float32 section into something stored (bytes, or tensors for the neural
tokenizers) and back. ``Encoded.nbytes`` is what the comparison divides into the input size, so
each codec counts everything it would have to keep on disk (payload and the few header numbers
it needs to decode), never an estimate.

A family of codecs is a module in ``codecs/families/`` that registers a factory with :func:`register`;
``codecs.registry`` finds them by folder and builds codecs by name.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SeisfmError

KINDS = ("lossless", "lossy", "neural")


@dataclass
class Encoded:
    """What a codec stores: ``payload`` (bytes or tensors), its honest size, and decode info."""

    payload: Any
    nbytes: int
    shape: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)


class Codec(ABC):
    """A named way to encode a 2D float32 section and decode it again."""

    name: str = ""
    kind: str = "lossless"  # "lossless" | "lossy" | "neural"
    backend: str = "cpu"  # library (and device) doing the work, shown in the table
    min_shape: tuple[int, int] = (1, 1)  # smallest section the codec can take

    def unavailable_reason(self) -> str | None:
        """Why this codec cannot run here (None: it can)."""
        return None

    @abstractmethod
    def encode(self, x: np.ndarray) -> Encoded:
        """Encode a C-contiguous 2D float32 array."""

    @abstractmethod
    def decode(self, enc: Encoded) -> np.ndarray:
        """Return a float32 array of ``enc.shape``."""

    def check_input(self, x: np.ndarray) -> None:
        """Refuse sections the codec cannot take, with a message naming the codec."""
        if x.ndim != 2:
            raise SeisfmError(f"{self.name}: needs a 2D section, got shape {x.shape}")
        small = [f"{n} < {m}" for n, m in zip(x.shape, self.min_shape) if n < m]
        if small:
            raise SeisfmError(
                f"{self.name}: section {x.shape[0]}x{x.shape[1]} is smaller than its "
                f"{self.min_shape[0]}x{self.min_shape[1]} block ({', '.join(small)})"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.kind}, {self.backend})>"


# name pattern -> factory(match, options) -> Codec; options carry e.g. cosmos_dir
FACTORIES: list[tuple[re.Pattern[str], Callable[..., Codec], str]] = []


def register(pattern: str, example: str) -> Callable[[Callable[..., Codec]], Callable[..., Codec]]:
    """Register a factory for codec names matching ``pattern`` (full match, case-insensitive)."""

    def deco(factory: Callable[..., Codec]) -> Callable[..., Codec]:
        FACTORIES.append((re.compile(pattern, re.IGNORECASE), factory, example))
        return factory

    return deco
