"""The one interface every feature extractor implements, and the registry of embedder families.

Extraction (``napari_seisfm.extract``) tiles a cube into blocks of grid points, reads each block
with a halo of context around it, standardises it, and hands it to ``Embedder.embed_block``. The
embedder returns one vector per grid point. ViT encoders and the classical attribute embedder sit
behind the same call, so the extraction loop, the feature store and the search know nothing of
what computed the vectors (napari-convpaint's registry of interchangeable extractors, in spirit).

A family (the attribute embedder, the ViTs) registers a builder for the ``tokenization`` values of
its model cards with :func:`family`; its module lives in ``encoders/families/`` and is found there
by ``registry.get_embedder`` (``families/_template.py`` shows how to add one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SeisfmError


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

    # -- lone 2-D sections (image sets, ``napari_seisfm.images``) ---------------------------
    def check_sections(self) -> None:
        """Refuse, before any work, an embedder that cannot embed a lone section: one that needs
        neighbouring lines (``halo[0] > 0``) and is no 2.5D model (a 3D ViT)."""
        if self.halo[0] != 0 and self.card.tokenization != "2.5d":
            raise SeisfmError(
                f"model {self.card.id!r} ({self.card.tokenization} tokenization) needs neighbouring lines around a section; "
                "2-D images need a model that embeds one section: attributes, a 2d or a 2.5d model"
            )

    def embed_sections(self, sections: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
        """Embed a stack of independent 2-D sections ``(n, trace, sample)``, each with ``halo[1:]``
        samples of context on each side, at ``stride`` (trace, sample): float32 ``(n, gx, gt, dim)``.

        The default (the 2.5D one) embeds each section on its own as extraction embeds a 2-D line:
        the section mirrored into ``2 * halo[0] + 1`` identical neighbours (one, for an embedder
        with no halo along inlines), so a 2.5D model's crossline and diagonal views are the centre
        trace repeated. Families that embed many sections per call override it (the attributes)."""
        self.check_sections()
        x = np.asarray(sections, np.float32)
        if x.ndim == 2:
            x = x[None]
        depth = 2 * int(self.halo[0]) + 1
        step = (1, *(int(s) for s in stride))
        return np.concatenate(
            [self.embed_block(np.ascontiguousarray(np.broadcast_to(one[None], (depth, *one.shape))), step) for one in x]
        )


def grid_points(core: int, stride: int) -> int:
    """Number of grid points along one axis of a block core of ``core`` samples."""
    return -(-core // stride)


# -- embedder families --------------------------------------------------------------------------

# builder(card, weights, *, sha256, device, precision, batch_size, spacing, tiling) -> Embedder
Builder = Callable[..., Embedder]


@dataclass(frozen=True)
class Family:
    """How to build the embedders of the model cards of some tokenizations."""

    name: str  # the module that registered it, for messages
    tokenizations: tuple[str, ...]
    build: Builder
    weights: bool  # True: the card names a weights file (``--checkpoint`` overrides it); False: none taken


FAMILIES: dict[str, Family] = {}  # tokenization -> family


def family(*tokenizations: str, weights: bool = False) -> Callable[[Builder], Builder]:
    """Register ``builder`` for model cards with one of ``tokenizations``.

    ``builder(card, weights, *, sha256, device, precision, batch_size, spacing, tiling)`` returns the
    embedder. ``weights`` is the weights file (a Path; None for a family registered without
    weights) and ``sha256`` the hash it must have (None: not checked, a ``--checkpoint`` given by
    the user). A tokenization registered twice is a programming error."""

    def deco(builder: Builder) -> Builder:
        for t in tokenizations:
            if t in FAMILIES and FAMILIES[t].build is not builder:
                raise ValueError(f"tokenization {t!r} is registered twice ({FAMILIES[t].name}, {builder.__module__})")
            FAMILIES[t] = Family(builder.__module__, tuple(tokenizations), builder, weights)
        return builder

    return deco
