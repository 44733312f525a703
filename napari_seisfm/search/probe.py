"""Click probe: positive and negative clicks -> a logistic regression -> probability of the target everywhere.

The centroid rule (:class:`~napari_seisfm.search.CentroidSearch`) ranks well but decides poorly: every
stored dimension counts by its variance, and the threshold has to be guessed. The probe learns the
decision from the clicks instead. Training set, refitted on every click (a few milliseconds):

- the positive clicks (class 1), and the negative clicks (class 0), each side weighing 1 in total;
- ``background`` random valid grid points (class 0, weighing ``background_weight`` in total): the
  assumption every interpreter makes, that a feature worth clicking is rare, turned into data, so a
  single positive click already gives a map.

The map is the probability ``sigmoid(decode(x) . q + c)``, one matrix-vector product over the stored
matrix with the same SIMD kernel as the centroid map, and 0.5 is its natural threshold. Measured on
`seisfm bench` with the simulated interpreter (docs/quality.md), it needs far fewer clicks than the
centroid rule for every synthetic target.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
        self._pool = None

    def training_set(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flat rows, classes 1 = target / 0, weights): the positive clicks, the negative clicks and the
        background sample, each side weighing 1 in total (the background ``background_weight``)."""
        fm = self.features
        pos = sorted(fm.flat(g) for g in self.positives)  # sorted: the same clicks in any order give the same map
        neg = sorted(fm.flat(g) for g in self.negatives)
        rows = np.asarray(pos + neg + list(self.background), int)
        y = np.r_[np.ones(len(pos), int), np.zeros(len(neg) + len(self.background), int)]
        w = np.r_[np.full(len(pos), 1.0 / len(pos)),
                  np.full(len(neg), 1.0 / max(len(neg), 1)),
                  np.full(len(self.background), self.background_weight / max(len(self.background), 1))]
        return rows, y, w

    def query(self) -> np.ndarray:
        """Fit the probe to the current clicks; returns ``q`` (the offset is kept for :meth:`scores`)."""
        super().query()  # the "add a positive click first" check
        rows, y, w = self.training_set()
        q, self._offset = fit_linear_model(self.features, rows, y, 2, weights=w, l2=self.l2).binary_query()
        return q

    def scores(self) -> np.ndarray:
        if self._scores is None:
            q = self.query()
            s = self.features.dots(q, kernel=self.kernel.name, threads=self.kernel.threads)
            self._scores = self._sigmoid(s, np.float32(self._offset))
        return self._scores

    def scores_at(self, flat_index) -> np.ndarray:
        s = super().scores_at(flat_index)  # fits the probe: query() sets the offset
        return expit(s + np.float32(self._offset))

    def _sigmoid(self, s: np.ndarray, offset: np.float32) -> np.ndarray:
        """``expit(s + offset)`` in place, in one pass per thread (NaN stays NaN): at 16.7 M points a
        single-threaded pass costs about as much as the dot product itself."""

        def part(sl):
            x = s[sl]
            x += offset
            expit(x, out=x)

        bounds = np.linspace(0, len(s), self.kernel.threads + 1).astype(int)
        parts = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if len(parts) > 1 and len(s) > 1 << 20:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(len(parts))
            list(self._pool.map(part, parts))
        else:
            part(slice(None))
        return s

    def default_threshold(self, score_map=None) -> float:
        return 0.5

    def click_threshold(self) -> float:
        return 0.5

    def query_error(self) -> float:
        """Bound on the probability error the kernel's query quantisation adds (sigmoid slope <= 1/4)."""
        return 0.25 * self.kernel.query_error(self.query())


class ReadoutProbe(ProbeSearch):
    """The probe's training set (clicks + background sample) fed to a nonlinear read-out on the vectors and
    their context (:mod:`.readouts`) once the clicks allow it: ``min_positives`` positive and
    ``min_negatives`` negative clicks. Before that, and as the instant preview of the section on screen
    (:meth:`scores_at`), the map is the linear probe's; the nonlinear map replaces it when the whole grid
    is computed. The map is the read-out's probability of the target (unsmoothed), 0.5 its threshold."""

    decision = "mlp"
    readout = "mlp"

    def __init__(self, features: FeatureMatrix, *, context=None, min_positives: int = 2, min_negatives: int = 1,
                 readout_options: dict | None = None, **kw):
        from .linear_segmenter import CONTEXT

        super().__init__(features, **kw)
        self.context = CONTEXT if context is None else context
        self.min_positives, self.min_negatives = int(min_positives), int(min_negatives)
        self.readout_options = dict(readout_options or {})
        self.model = None  # the latest nonlinear fit (None while the linear probe decides)
        self._inputs = None
        self._rows: dict[int, np.ndarray] = {}  # inputs of the rows fitted so far: a click costs its own rows only

    @property
    def nonlinear(self) -> bool:
        """Whether the clicks allow the nonlinear read-out (else the map is the linear probe's)."""
        return len(self.positives) >= self.min_positives and len(self.negatives) >= self.min_negatives

    def scores(self) -> np.ndarray:
        if not self.nonlinear:
            self.model = None
            return super().scores()
        if self._scores is None:
            from .readouts import READOUTS

            from .readouts import Inputs

            rows, y, w = self.training_set()
            if self._inputs is None:
                self._inputs = Inputs(self.features, self.context)
            new = [r for r in dict.fromkeys(rows.tolist()) if r not in self._rows]
            if new:
                self._rows.update(zip(new, self._inputs.at(np.asarray(new, int))))
            X = np.stack([self._rows[r] for r in rows.tolist()])
            self.model = READOUTS[self.readout].on_rows(self.features, rows, y, w, smooth=0, context=self.context,
                                                        seed=0, threads=self.kernel.threads, inputs=X,
                                                        **self.readout_options)
            s = self.model.segment().probabilities[..., 1].reshape(-1)
            s[~self.features.valid] = np.nan
            self._scores = s
        return self._scores
