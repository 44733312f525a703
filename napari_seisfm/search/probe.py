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

With ``context`` (scales as the segmenters', :mod:`.context`) the probe also sees each point's
neighbourhood: the vectors smoothed at those scales join its inputs (their weights 10 x dearer, as the
linear segmenter's). Being linear it folds as the segmenter does: the map is ``sigmoid(x . q_0 + sum_s
G_s(x . q_s) + c)``, one dot product per fine scale smoothed as one channel, the wide scales' terms made on
their pooled grid once per click. The section on screen is computed on its box plus the fine scales' halo
(:meth:`ProbeSearch.scores_box`).

:class:`ReadoutProbe` and its subclasses are the nonlinear decisions: the same training set fed to a
read-out of :mod:`.readouts` once there are enough positive and negative clicks, the linear probe before
that and as the preview of the section on screen.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .centroid import CentroidSearch
from .context import smooth_grid
from .kernels import quantise_query
from .knn import box_index
from .linear import Standardiser, fit_linear_model, fit_logistic
from .matrix import FeatureMatrix

BACKGROUND = 2000  # random grid points taken as background (chosen on the dev seeds, docs/quality.md)
CONTEXT_PENALTY = 10.0  # the context columns' L2 is this many times the vector's own (as the linear segmenter's)
# The probe's context scales (grid points). Dev seeds 0-2, simulated interpreter, NoC@0.8 none / (1.5, 3, 6, 12):
# salt 21 / 19.7, flat spot 7.3 / 7.0, channel 16.7 / 14.7, boulder 20.3 / 20.3, the rest 21 / 21 (docs/quality.md).
PROBE_CONTEXT = (1.5, 3.0, 6.0, 12.0)
MIN_POSITIVES, MIN_NEGATIVES = 2, 1  # clicks a nonlinear decision waits for (the linear probe decides before)


class ProbeSearch(CentroidSearch):
    """Clicks in, float32 probability map (0..1) on the feature grid out; the same click API as CentroidSearch."""

    decision = "probe"

    def __init__(
        self,
        features: FeatureMatrix,
        *,
        kernel: str = "auto",
        threads: int | None = None,
        background: int = BACKGROUND,
        background_weight: float = 1.0,
        l2: float = 1e-2,
        seed: int = 0,
        context=None,
    ):
        super().__init__(features, kernel=kernel, threads=threads)
        valid = np.flatnonzero(features.valid)
        take = min(int(background), len(valid))
        self.background = np.sort(np.random.default_rng(seed).choice(valid, take, replace=False)) if take else valid
        self.background_weight = float(background_weight)
        self.l2 = float(l2)
        self.context = PROBE_CONTEXT if context is None else tuple(context)
        self._offset = 0.0
        self._inputs = None
        self._rows: dict[int, np.ndarray] = {}  # inputs of the rows fitted so far: a click costs its own rows only
        self._folded = None  # (fine scales [(sigma3, q)], wide terms [(pooled, coarse q)]) of the latest fit

    # ------------------------------------------------------------------ inputs with context
    def inputs(self):
        """The vectors and their context columns (:class:`~.readouts.Inputs`), built once."""
        if self._inputs is None:
            from .readouts import Inputs

            self._inputs = Inputs(self.features, self.context)
        return self._inputs

    def prepare(self) -> None:
        """The background sample's inputs with their context, before the first click (0.5 s on a 256^3 grid,
        benchmarks/bench_readouts.py): the first click then costs what every later one does."""
        if self.context:
            self.rows_inputs(self.background)

    def rows_inputs(self, rows: np.ndarray) -> np.ndarray:
        """Inputs of flat grid rows, cached: the background sample is computed once per search."""
        new = [r for r in dict.fromkeys(rows.tolist()) if r not in self._rows]
        if new:
            self._rows.update(zip(new, self.inputs().at(np.asarray(new, int))))
        return np.stack([self._rows[r] for r in rows.tolist()])

    def training_set(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flat rows, classes 1 = target / 0, weights): the positive clicks, the negative clicks and the
        background sample, each side weighing 1 in total (the background ``background_weight``)."""
        fm = self.features
        pos = sorted(fm.flat(g) for g in self.positives)  # sorted: the same clicks in any order give the same map
        neg = sorted(fm.flat(g) for g in self.negatives)
        rows = np.asarray(pos + neg + list(self.background), int)
        y = np.r_[np.ones(len(pos), int), np.zeros(len(neg) + len(self.background), int)]
        w = np.r_[
            np.full(len(pos), 1.0 / len(pos)),
            np.full(len(neg), 1.0 / max(len(neg), 1)),
            np.full(len(self.background), self.background_weight / max(len(self.background), 1)),
        ]
        return rows, y, w

    def query(self) -> np.ndarray:
        """Fit the probe to the current clicks; returns ``q``, the weights of a point's own stored vector (the
        offset, and with context the folded context terms, are kept for :meth:`scores`)."""
        super().query()  # the "add a positive click first" check
        rows, y, w = self.training_set()
        if not self.context:
            q, self._offset = fit_linear_model(self.features, rows, y, 2, weights=w, l2=self.l2).binary_query()
            self._folded = ([], [])
            return q
        fm = self.features
        d = fm.dim
        inputs = self.inputs()
        ctx = inputs.context
        X = self.rows_inputs(rows)
        penalty = np.full(X.shape[1], self.l2)
        penalty[d:] *= CONTEXT_PENALTY
        W, b = fit_logistic(X, y, 2, weights=w, l2=penalty)
        theta, c = W[:, 1] - W[:, 0], float(b[1] - b[0])
        self._theta, self._bias = theta.astype(np.float32), np.float32(c)  # on the inputs themselves
        st = Standardiser.of(fm)
        q = theta[:d] / st.std
        c -= float(st.mean @ q)
        fine, wide = [], []
        for i, sigma3 in enumerate(ctx.scales):
            wi = theta[d * (1 + i) : d * (2 + i)] / ctx.std[i]  # weights of the smoothed standardised vectors
            c -= float(ctx.mean[i] @ wi)
            if ctx.is_wide(i):
                pooled, coarse = ctx.pooled(i)
                wide.append((pooled, (coarse @ wi).astype(np.float32)[..., None]))
            else:
                qi = (wi / st.std).astype(np.float32)  # z . wi = x . qi - mean . qi at valid points, 0 elsewhere
                fine.append((sigma3, qi, float(st.mean @ qi)))
        self._offset, self._folded = c, (fine, wide)
        return q.astype(np.float32)

    def scores(self) -> np.ndarray:
        if self._scores is None:
            q = self.query()
            offset = np.float32(self._offset)

            def sigmoid(block):  # on each block of dot products while it is in cache: no second pass over the map
                block += offset
                expit(block, out=block)

            fm = self.features
            fine, wide = self._folded
            if fine or wide:
                s = self._dots(q, precise=True)
                grid = s.reshape(fm.shape)
                for sigma3, qi, shift in fine:
                    ch = self._dots(qi, precise=True)
                    ch -= np.float32(shift)
                    ch[fm.invalid_index] = 0.0  # no vector: the mean, as in training
                    grid += smooth_grid(ch.reshape(*fm.shape, 1), sigma3)[..., 0]
                whole = tuple(slice(0, n) for n in fm.shape)
                for pooled, coarse in wide:
                    grid += pooled.box(coarse, whole)[..., 0]
                sigmoid(s)
            else:
                s = self.kernel(q, post=sigmoid)
            s[fm.invalid_index] = np.nan
            s.flags.writeable = False  # shared with every caller of score_map (the session's result): never changed
            self._scores = s
        return self._scores

    def _dots(self, q: np.ndarray, *, precise: bool) -> np.ndarray:
        """``decode(x) . q`` for every grid point with the dot kernel. ``precise``: where the kernel rounds the
        query (int8 stores: one int8 query of scale 127 / max|q|), a second pass with the rounding residual,
        quantised in turn, takes the error down by about 127 x. The context probe needs it: its weights mix
        several scales, and a rounding error of 0.1 in probability could drop a clicked point below 0.5 (and
        with it the body the mask keeps; measured on the dev seeds)."""
        fm, name, threads = self.features, self.kernel.name, self.kernel.threads
        s = fm.dots(q, kernel=name, threads=threads)
        if precise and self.kernel.query_error(q) > 0:
            q8, scale = quantise_query(np.asarray(q, np.float32))
            s += fm.dots(np.asarray(q, np.float32) - q8.astype(np.float32) / np.float32(scale), kernel=name, threads=threads)
        return s

    def scores_at(self, flat_index) -> np.ndarray:
        """Probabilities of some grid points only (the clicks' own rows, a few points): with context, the fitted
        model on their inputs (:meth:`scores_box` gives a section with its halo)."""
        if not self.context:
            s = super().scores_at(flat_index)  # fits the probe: query() sets the offset
            return expit(s + np.float32(self._offset))
        self.query()
        idx = np.asarray(flat_index, np.int64).reshape(-1)
        s = expit(self.inputs().at(idx) @ self._theta + self._bias).astype(np.float32)
        s[~self.features.valid[idx]] = np.nan
        return s

    def scores_box(self, region) -> np.ndarray:
        """The map on a box of the grid (three slices): the section on screen before the whole map. With
        context it is computed on the box plus the fine scales' halo; the same values as the whole map there
        (within the dot kernel's query rounding)."""
        fm = self.features
        region, shape, flat = box_index(fm.shape, region)
        if not self.context:
            return self.scores_at(flat).reshape(shape)
        q = self.query()
        fine, wide = self._folded
        reach = self.inputs().reach
        outer, osub, oflat = box_index(
            fm.shape, [slice(max(r.start - h, 0), min(r.stop + h, n)) for r, n, h in zip(region, fm.shape, reach)]
        )
        keep = tuple(slice(r.start - o.start, r.stop - o.start) for r, o in zip(region, outer))
        x = fm.decode(fm.vectors[oflat])
        ok = fm.valid[oflat]
        grid = (x @ q).reshape(osub)[keep] + np.float32(self._offset)
        for sigma3, qi, shift in fine:
            ch = x @ qi - np.float32(shift)
            ch[~ok] = 0.0
            grid += smooth_grid(ch.reshape(*osub, 1), sigma3)[..., 0][keep]
        for pooled, coarse in wide:
            grid += pooled.box(coarse, region)[..., 0]
        out = expit(grid).astype(np.float32)
        out[~ok.reshape(osub)[keep]] = np.nan
        return out

    def default_threshold(self, score_map=None) -> float:
        return 0.5

    def click_threshold(self) -> float:
        return 0.5

    def query_error(self) -> float:
        """Bound on the probability error the kernel's query quantisation adds (sigmoid slope <= 1/4); with
        context, the second passes' residual rounding of every query (a smoothing's weights sum to 1)."""
        q = self.query()
        fine, wide = self._folded
        if not (fine or wide):
            return 0.25 * self.kernel.query_error(q)
        err = 0.0
        for query in [q] + [qi for _, qi, _ in fine]:
            query = np.asarray(query, np.float32)
            if self.kernel.query_error(query) > 0:
                q8, scale = quantise_query(query)
                err += self.kernel.query_error(query - q8.astype(np.float32) / np.float32(scale))
        return 0.25 * err


class ReadoutProbe(ProbeSearch):
    """The probe's training set (clicks + background sample) fed to a nonlinear read-out on the vectors and
    their context (:mod:`.readouts`) once the clicks allow it: ``min_positives`` positive and
    ``min_negatives`` negative clicks. Before that, and as the instant preview of the section on screen
    (:meth:`scores_at`, :meth:`scores_box`), the map is the linear probe's (with the same context); the
    nonlinear map replaces it when the whole grid is computed. The map is the read-out's probability of the
    target (unsmoothed), 0.5 its threshold. One subclass per read-out (``decision`` = its name)."""

    decision = readout = "mlp"

    def __init__(
        self,
        features: FeatureMatrix,
        *,
        min_positives: int = MIN_POSITIVES,
        min_negatives: int = MIN_NEGATIVES,
        readout_options: dict | None = None,
        **kw,
    ):
        super().__init__(features, **kw)
        self.min_positives, self.min_negatives = int(min_positives), int(min_negatives)
        self.readout_options = dict(readout_options or {})
        self.model = None  # the latest nonlinear fit (None while the linear probe decides)

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

            rows, y, w = self.training_set()
            X = self.rows_inputs(rows)
            self.model = READOUTS[self.readout].on_rows(
                self.features,
                rows,
                y,
                w,
                smooth=0,
                context=self.context,
                seed=0,
                threads=self.kernel.threads,
                inputs=X,
                **self.readout_options,
            )
            s = self.model.segment().probabilities[..., 1].reshape(-1)
            s[~self.features.valid] = np.nan
            self._scores = s
        return self._scores


def _decision(name: str) -> type:
    return type(
        f"{name.capitalize()}Probe",
        (ReadoutProbe,),
        {"decision": name, "readout": name, "__doc__": f"ReadoutProbe with the {name} read-out."},
    )


READOUT_DECISIONS = {name: (ReadoutProbe if name == "mlp" else _decision(name)) for name in ("mlp", "forest", "boosting", "conv")}
