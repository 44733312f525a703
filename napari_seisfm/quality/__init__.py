"""Interpretation quality that users can measure: the protocols (:mod:`.protocols`) and the suite behind
`seisfm bench` (:mod:`.suite`). docs/quality.md has the tables and the commands."""

from .protocols import (
    MAX_CLICKS,
    NOC_IOU,
    auc,
    best_iou,
    click_quality,
    grid_labels,
    iou,
    knn_quality,
    line_support,
    mean_iou,
    pick_clicks,
    product_mask,
    sample_support,
    segmentation_quality,
    simulated_interpreter,
)
from .report import figures, markdown, to_json
from .suite import ADAPT_STEPS, DEV_SEEDS, REPORT_SEEDS, prepare, run

__all__ = [
    "MAX_CLICKS",
    "NOC_IOU",
    "auc",
    "best_iou",
    "click_quality",
    "grid_labels",
    "iou",
    "knn_quality",
    "line_support",
    "mean_iou",
    "pick_clicks",
    "product_mask",
    "sample_support",
    "segmentation_quality",
    "simulated_interpreter",
    "ADAPT_STEPS",
    "DEV_SEEDS",
    "REPORT_SEEDS",
    "figures",
    "markdown",
    "prepare",
    "run",
    "to_json",
]
