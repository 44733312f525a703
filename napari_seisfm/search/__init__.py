"""Search a feature volume: click-to-map similarity, top matches and kNN segmentation (headless).

Public API (kept stable for the widget, the CLI and the demo):

- :class:`FeatureMatrix` -- a feature volume loaded once as one ``(N, dim)`` matrix in the stored dtype,
  with its valid mask, grid and geometry; ``FeatureMatrix.open(path)`` or ``FeatureMatrix.from_array(...)``.
- :class:`CentroidSearch` -- positive/negative clicks -> float32 score map on the feature grid; ranked
  :class:`Match` list with non-maximum suppression.
- :class:`KnnSegmenter` -- labelled grid points (class ids > 0) -> class map, per-class probability and
  confidence (:class:`KnnResult`), for a slice first and then the whole grid in batches.
- :class:`ProbeSearch` -- the same clicks -> a logistic probe -> probability map (the default decision).
- :class:`LinearSegmenter` -- labelled points -> logistic regression + smoothed probabilities (the default
  segmentation; kNN stays as the paper's protocol). :func:`make_search` / :func:`make_segmenter` pick
  a rule by name (``DECISIONS``, ``SEGMENTERS``).
- :func:`connected_to`, :func:`threshold_mask` -- the parts of a thresholded map connected to the
  positive clicks: the mask the product shows; :func:`auto_threshold` -- the default threshold.
- :func:`support_from_labels`, :func:`support_from_points` -- turn a Labels volume (feature grid or cube
  grid) or class-tagged points into ``(grid indices, classes)``.
- :func:`kmeans_facies` -- unsupervised facies: k-means over the whole grid -> class map 1..k
  (:class:`FaciesResult`); :func:`adjusted_rand_index` compares two labellings.

docs/search.md has the formulas and the measured kernels.
"""

from .centroid import CentroidSearch, Match
from .facies import FaciesResult, adjusted_rand_index, kmeans_facies
from .knn import KnnResult, KnnSegmenter, Segmentation, support_from_labels, support_from_points
from .linear_segmenter import LinearSegmenter
from .matrix import FeatureMatrix
from .methods import DECISIONS, DEFAULT_DECISION, DEFAULT_SEGMENTER, SEGMENTERS, make_search, make_segmenter
from .probe import ProbeSearch
from .region import auto_threshold, connected_to, threshold_mask

__all__ = [
    "FeatureMatrix",
    "CentroidSearch",
    "Match",
    "KnnSegmenter",
    "KnnResult",
    "Segmentation",
    "ProbeSearch",
    "LinearSegmenter",
    "connected_to",
    "threshold_mask",
    "auto_threshold",
    "DECISIONS",
    "SEGMENTERS",
    "DEFAULT_DECISION",
    "DEFAULT_SEGMENTER",
    "make_search",
    "make_segmenter",
    "support_from_labels",
    "support_from_points",
    "kmeans_facies",
    "FaciesResult",
    "adjusted_rand_index",
]
