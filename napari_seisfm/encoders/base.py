"""The one interface every feature extractor implements.

Extraction (``napari_seisfm.extract``) tiles a cube into blocks of grid points, reads each block
with a halo of context around it, standardises it, and hands it to ``Embedder.embed_block``. The
embedder returns one vector per grid point. ViT encoders and the classical attribute embedder sit
behind the same call, so the extraction loop, the feature store and the search know nothing of
what computed the vectors (napari-convpaint's registry of interchangeable extractors, in spirit).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelCard:
    """What a user needs to know about a model, read from a TOML file in ``models/``."""

    id: str
    name: str
    tokenization: str  # "2d" | "2.5d" | "3d" | "attributes"
    dim: int  # length of one embedding vector as produced (before any PCA)
    patch: tuple[int, ...] = ()
    window: tuple[int, ...] = ()
    checkpoint: str | None = None  # file name expected under the model directory
    sha256: str | None = None
    source: str = ""
    citation: str = ""
    licence: str = ""
    normalisation: str = "unit-variance, clip 3 std"  # the NCS recipe
    root: str = ""  # folder of a card opened by path (``--model DIR``): its weights are looked for there first
    extra: dict[str, Any] = field(default_factory=dict)


class Embedder(ABC):
    """Maps a standardised block of seismic to embeddings on a strided grid."""

    card: ModelCard
    # Long ``embed_block`` calls report their own steps (a ViT's batches, the attribute embedder's stages)
    # with ``napari_seisfm.progress.step(done, total)``: the extraction shows progress within a block and
    # may stop the call there (``SeisfmCancelled``; nothing is returned).

    @property
    def dim(self) -> int:
        return self.card.dim

    @property
    @abstractmethod
    def halo(self) -> tuple[int, int, int]:
        """Samples of context needed on each side of a grid point, per axis (il, xl, t)."""

    @abstractmethod
    def embed_block(self, block: np.ndarray, stride: tuple[int, int, int]) -> np.ndarray:
        """Embed the grid points of one block.

        ``block`` is float32, already standardised, with ``halo`` samples of context (edge
        padded at the cube border) on each side. Grid point ``(a, b, c)`` sits at
        ``block[halo[0] + a*stride[0], halo[1] + b*stride[1], halo[2] + c*stride[2]]``; there are
        ``ceil((block.shape[k] - 2*halo[k]) / stride[k])`` of them along axis ``k``. Returns
        float32 ``(ga, gb, gc, dim)``.
        """

    def checkpoint_sha256(self) -> str | None:
        """Hash of the weights used, recorded in feature stores (None: no weights)."""
        return None


def grid_points(core: int, stride: int) -> int:
    """Number of grid points along one axis of a block core of ``core`` samples."""
    return -(-core // stride)
