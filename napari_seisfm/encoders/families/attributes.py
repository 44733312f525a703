"""The classical attribute embedder (``tokenization = "attributes"``): no weights, runs on the CPU."""

from __future__ import annotations

from ..base import Embedder, ModelCard, family


@family("attributes")
def build(card: ModelCard, weights, *, device="auto", **_options) -> Embedder:
    from ..attributes import AttributeEmbedder

    if str(device) not in ("auto", "cpu"):  # it runs on the CPU: a GPU asked for must at least exist
        from ..vit_embedder import pick_device

        pick_device(str(device))
    return AttributeEmbedder(card)
