"""Two or more embedders side by side: ``--model attributes+seisfm-small-2.5d``.

A learned model and the classical attributes see different things (texture and shape learned from
data; amplitude, frequency and dip measured at fixed scales), so their concatenation can beat each.
Each part's vector is scaled to unit length before concatenation, so in the cosine of kNN and the
similarity map every part weighs the same whatever its width or units; the linear read-outs
standardise columns anyway.

The block handed to :meth:`CombinedEmbedder.embed_block` carries the largest halo of the parts;
each part gets the centred crop with its own halo, so the grid points line up exactly.
"""

from __future__ import annotations

import numpy as np

from ..errors import SeisfmError
from .base import Embedder, ModelCard

SEPARATOR = "+"


class CombinedEmbedder(Embedder):
    def __init__(self, parts: list[Embedder]):
        if len(parts) < 2:
            raise SeisfmError("a combined model needs two or more parts (e.g. attributes+seisfm-micro-2.5d)")
        self.parts = parts
        ids = SEPARATOR.join(p.card.id for p in parts)
        self.card = ModelCard(
            id=ids,
            name=" + ".join(p.card.name for p in parts),
            tokenization="combined",
            dim=sum(p.dim for p in parts),
            source="concatenation of unit-length vectors of: " + ", ".join(p.card.id for p in parts),
        )
        self.native_sections = all(getattr(p, "native_sections", False) for p in parts)

    @property
    def halo(self) -> tuple[int, int, int]:
        return tuple(max(p.halo[k] for p in self.parts) for k in range(3))

    def preferred_core(self) -> tuple[int, int, int]:
        cores = [p.preferred_core() for p in self.parts if hasattr(p, "preferred_core")]
        return tuple(max(c[k] for c in cores) for k in range(3)) if cores else (64, 64, 64)

    def embed_block(self, block: np.ndarray, stride: tuple[int, int, int]) -> np.ndarray:
        big = self.halo
        flat = [k for k in range(3) if block.shape[k] == 1]  # a native 2-D section: no halo along it
        out = []
        for p in self.parts:
            cut = tuple(
                slice(None) if k in flat else slice(big[k] - p.halo[k], block.shape[k] - (big[k] - p.halo[k])) for k in range(3)
            )
            out.append(unit(p.embed_block(np.ascontiguousarray(block[cut]), stride)))
        return np.concatenate(out, axis=-1)

    def check_sections(self) -> None:
        for p in self.parts:
            p.check_sections()

    def embed_sections(self, sections: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
        """Stacks of 2-D images: each part embeds its centred crop as it would on its own."""
        self.check_sections()
        big = self.halo[1:]
        out = []
        for p in self.parts:
            h = p.halo[1:]
            cut = (slice(None), *(slice(b - hh, sections.shape[k + 1] - (b - hh)) for k, (b, hh) in enumerate(zip(big, h))))
            out.append(unit(p.embed_sections(np.ascontiguousarray(sections[cut]), stride)))
        return np.concatenate(out, axis=-1)

    def checkpoint_sha256(self) -> str | None:
        shas = [p.checkpoint_sha256() or "-" for p in self.parts]
        return SEPARATOR.join(shas) if any(s != "-" for s in shas) else None


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(n, 1e-12)).astype(np.float32)
