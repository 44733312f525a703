"""The interchangeable decision rules, by name: what `seisfm search --decision`, `seisfm segment --method`,
the bench and the Click-to-map dock choose from. Defaults are chosen on `seisfm bench` (docs/quality.md)."""

from __future__ import annotations

from ..errors import SeisfmError
from .centroid import CentroidSearch
from .knn import KnnSegmenter
from .linear_segmenter import LinearSegmenter
from .probe import ProbeSearch

DECISIONS = {"probe": ProbeSearch, "centroid": CentroidSearch}
SEGMENTERS = {"linear": LinearSegmenter, "knn": KnnSegmenter}
DEFAULT_DECISION = "probe"
DEFAULT_SEGMENTER = "linear"


def _pick(table: dict, name: str, what: str):
    if name not in table:
        raise SeisfmError(f"unknown {what} {name!r}; choose from {', '.join(table)}")
    return table[name]


def make_search(features, decision: str = DEFAULT_DECISION, **options):
    """A click search (``probe``: logistic probe, ``centroid``: mean-cosine similarity) over ``features``."""
    return _pick(DECISIONS, decision, "decision")(features, **options)


def make_segmenter(features, points, classes, method: str = DEFAULT_SEGMENTER, **options):
    """A segmenter from labelled grid points (``linear``: logistic + smoothing, ``knn``: the paper's protocol)."""
    return _pick(SEGMENTERS, method, "segmentation method")(features, points, classes, **options)
