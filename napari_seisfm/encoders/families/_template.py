"""Template for a new embedder family: copy this file to ``encoders/families/<name>.py`` (a name without
a leading underscore) and it is found by folder; no other file needs an edit.

1. Pick the ``tokenization`` value(s) your model cards will carry and register a builder for them with
   ``@family(...)``; pass ``weights=True`` if cards name a weights file (``checkpoint = "..."``).
2. Write the embedder: subclass :class:`~napari_seisfm.encoders.base.Embedder`, give it ``halo`` and
   ``embed_block``. ``embed_sections`` (lone 2-D sections, image sets) has a default, which refuses
   (``check_sections``) a model with context along inlines unless it is 2.5D: override ``check_sections``
   if yours embeds a lone section natively, and ``embed_sections`` to embed many sections per call.
3. Keep this module light: import torch and your embedder inside the builder, so finding the families
   stays cheap and the headless core does not need your dependencies.
4. Add a card ``models/<id>.toml`` (id, name, tokenization, dim, ...) and run ``seisfm embed --model <id>``.

This module itself is skipped by the folder discovery (leading underscore); tests/test_encoders.py imports
it and builds its example, to keep it true.
"""

from __future__ import annotations

import numpy as np

from ..base import Embedder, ModelCard, family, grid_points


class MeanAmplitudeEmbedder(Embedder):
    """Example: one feature, the mean amplitude in a small box around each grid point."""

    def __init__(self, card: ModelCard, radius: int = 1):
        self.card = card
        self.radius = radius

    @property
    def halo(self) -> tuple[int, int, int]:
        return (self.radius,) * 3

    def embed_block(self, block: np.ndarray, stride: tuple[int, int, int]) -> np.ndarray:
        r, h = self.radius, self.halo
        n = [grid_points(block.shape[k] - 2 * h[k], stride[k]) for k in range(3)]
        out = np.empty((*n, self.card.dim), np.float32)
        for a in range(n[0]):
            for b in range(n[1]):
                for c in range(n[2]):
                    i, j, k = h[0] + a * stride[0], h[1] + b * stride[1], h[2] + c * stride[2]
                    out[a, b, c] = block[i - r : i + r + 1, j - r : j + r + 1, k - r : k + r + 1].mean()
        return out


TOKENIZATION = "mean-amplitude"  # the value model cards of this family carry


@family(TOKENIZATION)
def build(card: ModelCard, weights, **options) -> Embedder:
    """Builder: ``weights`` is the weights file (None for a family without weights); ``options`` are
    ``sha256, device, precision, batch_size, spacing, tiling`` (see ``encoders.base.family``)."""
    return MeanAmplitudeEmbedder(card)
