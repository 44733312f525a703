"""Spatial coherence of a thresholded map: keep the bodies the user clicked on.

A threshold marks everything that scores like the target anywhere in the cube; an interpreter who
clicked on one flat spot wants that flat spot, with its edges, not every bright patch of the survey.
The connected regions of the mask (face-connected on the feature grid) that hold a positive click are
what the click meant. Measured on the simulated-interpreter protocol (docs/quality.md) this is what
turns a good probe map into a mask that needs few corrections.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def connected_to(mask: np.ndarray, seeds) -> np.ndarray:
    """The parts of boolean ``mask`` connected (6-neighbourhood in 3-D) to any of the ``seeds`` (grid indices)."""
    mask = np.asarray(mask, bool)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask.copy()
    seeds = np.asarray(seeds, int).reshape(-1, mask.ndim)
    inside = (seeds >= 0).all(axis=1) & (seeds < np.asarray(mask.shape)).all(axis=1)
    hit = np.unique(labels[tuple(seeds[inside].T)]) if inside.any() else np.zeros(0, int)
    hit = hit[hit > 0]
    keep = np.zeros(n + 1, bool)
    keep[hit] = True
    return keep[labels]


def threshold_mask(score_map: np.ndarray, threshold: float, positives, *, connected: bool = True) -> np.ndarray:
    """What the product shows as "similarity > threshold": ``score >= threshold`` (no-value points never),
    and with ``connected`` only the bodies that hold a positive click. One definition for the dock, the
    CLI's ``--mask`` and the bench."""
    mask = np.asarray(score_map) >= threshold
    return connected_to(mask, positives) if connected else mask
