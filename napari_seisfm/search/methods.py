"""The interchangeable decision rules, by name: what `seisfm search --decision`, `seisfm segment --method`,
the bench and the Click-to-map dock choose from. Defaults are chosen on `seisfm bench` (docs/quality.md). The
names alone (for the CLI's choices, without importing this package) are in ``napari_seisfm.method_names``."""

from __future__ import annotations

from ..errors import SeisfmError
from ..method_names import DEFAULT_DECISION, DEFAULT_SEGMENTER
from .centroid import CentroidSearch
from .knn import KnnSegmenter
from .linear_segmenter import LinearSegmenter
from .probe import READOUT_DECISIONS, ProbeSearch
from .readouts import READOUTS

# click decisions: the linear probe, the nonlinear one once the clicks allow it (the linear map as its preview),
# and the earlier cosine rule
DECISIONS = {"probe": ProbeSearch, **READOUT_DECISIONS, "centroid": CentroidSearch}
# the read-outs of labelled points: linear (folded, fast), the nonlinear ones (search/readouts.py), and kNN (the
# NCS paper's protocol, kept as the reference every table shows)
SEGMENTERS = {"linear": LinearSegmenter, **READOUTS, "knn": KnnSegmenter}


def _pick(table: dict, name: str, what: str):
    if name not in table:
        raise SeisfmError(f"unknown {what} {name!r}; choose from {', '.join(table)}")
    return table[name]


def make_search(features, decision: str = DEFAULT_DECISION, **options):
    """A click search (``probe``: logistic probe on the vectors and their context; ``mlp``, ``forest``, ``boosting``,
    ``conv``: the probe's training set fed to that read-out once there are 2 positive and 1 negative clicks, the
    probe before that; ``centroid``: mean-cosine similarity)."""
    return _pick(DECISIONS, decision, "decision")(features, **options)


def make_segmenter(features, points, classes, method: str = DEFAULT_SEGMENTER, **options):
    """A segmenter from labelled grid points (``linear``: logistic + smoothing; ``forest``, ``boosting``, ``mlp``,
    ``conv``: nonlinear read-outs on the same inputs; ``knn``: the paper's protocol)."""
    return _pick(SEGMENTERS, method, "segmentation method")(features, points, classes, **options)
