"""Click probe: positive and negative clicks -> a logistic regression -> probability of the target everywhere.

The centroid rule (:class:`~napari_seisfm.search.CentroidSearch`) ranks well but decides poorly: every
stored dimension counts by its variance, and the threshold has to be guessed. The probe learns the
decision from the clicks instead. Training set, refitted on every click (a few milliseconds):

- the positive clicks (class 1), and the negative clicks (class 0), each side weighing 1 in total;
- ``background`` random valid grid points (class 0, weighing ``background_weight`` in total): the
  assumption every interpreter makes, that a feature worth clicking is rare, turned into data, so a
  single positive click already gives a map.

The map is the probability ``sigmoid(decode(x) . q + c)``, one matrix-vector product over the stored
matrix with the same SIMD kernel as the centroid map, the sigmoid applied to each block of dot products
while it is in cache, and 0.5 is its natural threshold. Measured on
`seisfm bench` with the simulated interpreter (docs/quality.md), it needs far fewer clicks than the
centroid rule for every synthetic target.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .centroid import CentroidSearch
from .linear import fit_linear_model
from .matrix import FeatureMatrix

BACKGROUND = 2000  # random grid points taken as background (chosen on the dev seeds, docs/quality.md)


class ProbeSearch(CentroidSearch):
    """Clicks in, float32 probability map (0..1) on the feature grid out; the same click API as CentroidSearch."""

    decision = "probe"

    def __init__(self, features: FeatureMatrix, *, kernel: str = "auto", threads: int | None = None,
                 background: int = BACKGROUND, background_weight: float = 1.0, l2: float = 1e-2, seed: int = 0):
        super().__init__(features, kernel=kernel, threads=threads)
        valid = np.flatnonzero(features.valid)
        take = min(int(background), len(valid))
        self.background = np.sort(np.random.default_rng(seed).choice(valid, take, replace=False)) if take else valid
        self.background_weight = float(background_weight)
        self.l2 = float(l2)
        self._offset = 0.0

    def query(self) -> np.ndarray:
        """Fit the probe to the current clicks; returns ``q`` (the offset is kept for :meth:`scores`)."""
        super().query()  # the "add a positive click first" check
        fm = self.features
        pos = sorted(fm.flat(g) for g in self.positives)  # sorted: the same clicks in any order give the same map
        neg = sorted(fm.flat(g) for g in self.negatives)
        rows = np.asarray(pos + neg + list(self.background), int)
        y = np.r_[np.ones(len(pos), int), np.zeros(len(neg) + len(self.background), int)]
        w = np.r_[np.full(len(pos), 1.0 / len(pos)),
                  np.full(len(neg), 1.0 / max(len(neg), 1)),
                  np.full(len(self.background), self.background_weight / max(len(self.background), 1))]
        q, self._offset = fit_linear_model(fm, rows, y, 2, weights=w, l2=self.l2).binary_query()
        return q

    def scores(self) -> np.ndarray:
        if self._scores is None:
            q = self.query()
            offset = np.float32(self._offset)

            def sigmoid(block):  # on each block of dot products while it is in cache: no second pass over the map
                block += offset
                expit(block, out=block)

            s = self.kernel(q, post=sigmoid)
            s[self.features.invalid_index] = np.nan
            s.flags.writeable = False  # shared with every caller of score_map (the session's result): never changed
            self._scores = s
        return self._scores

    def scores_at(self, flat_index) -> np.ndarray:
        s = super().scores_at(flat_index)  # fits the probe: query() sets the offset
        return expit(s + np.float32(self._offset))

    def default_threshold(self, score_map=None) -> float:
        return 0.5

    def click_threshold(self) -> float:
        return 0.5

    def query_error(self) -> float:
        """Bound on the probability error the kernel's query quantisation adds (sigmoid slope <= 1/4)."""
        return 0.25 * self.kernel.query_error(self.query())
