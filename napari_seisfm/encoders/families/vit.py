"""Vision transformers (``tokenization`` 2d, 2.5d or 3d): the card's architecture with its weights loaded."""

from __future__ import annotations

from pathlib import Path

from ...errors import SeisfmError
from ..base import Embedder, ModelCard, family


@family("2d", "2.5d", "3d", weights=True)
def build(
    card: ModelCard,
    weights: Path,
    *,
    sha256=None,
    device="auto",
    precision="auto",
    batch_size=None,
    spacing=None,
    tiling=None,
) -> Embedder:
    from ..checkpoint import load_encoder
    from ..vit import build_encoder
    from ..vit_embedder import ViTEmbedder

    encoder = build_encoder(card)
    report = load_encoder(encoder, weights, what=f"the {card.id} encoder")
    if sha256 and report.sha256 != sha256:
        raise SeisfmError(f"{weights}: sha256 {report.sha256} differs from the model card's {sha256}")
    return ViTEmbedder(
        card,
        encoder,
        device=device,
        precision=precision,
        batch_size=batch_size,
        sha256=report.sha256,
        spacing=spacing,
        tiling=tiling,
    )
