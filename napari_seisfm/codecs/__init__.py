"""Codec reconstruction comparison (quantization, lossless, ZFP, Cosmos tokenizers), headless.

``compare(section, codecs, sample_interval_ms)`` prepares a 2D section as the Cosmos-tokenizer
seismic paper did and measures each codec; ``table`` formats the result, ``plots`` draws it.
"""

from .base import Codec, Encoded
from .compare import COSMOS_CODECS, DEFAULT_CODECS, Comparison, Row, compare, expand_codecs
from .registry import get_codec, known_patterns

__all__ = [
    "COSMOS_CODECS",
    "DEFAULT_CODECS",
    "Codec",
    "Comparison",
    "Encoded",
    "Row",
    "compare",
    "expand_codecs",
    "get_codec",
    "known_patterns",
]
