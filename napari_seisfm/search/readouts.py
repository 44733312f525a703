"""Nonlinear read-outs of the stored vectors: random forest, gradient boosting, a small MLP, a conv head.

The linear read-out (:mod:`.linear_segmenter`) folds into one GEMM and smooths logit channels; a nonlinear
model cannot be folded, so these read-outs materialise their inputs: for every grid point the standardised
vector ``z`` and the same context columns as the linear read-out (``z`` smoothed at the context scales,
re-standardised: :class:`~.context.Context`), computed exactly on a box of the grid with the halo the fine
scales reach (wide scales read the pooled grid). The model's class probabilities are then smoothed over
valid grid points as the linear read-out's are, and the most probable class wins.

- ``forest``: scikit-learn's random forest (the ilastik / convpaint standard), class-balanced.
- ``boosting``: scikit-learn's histogram gradient boosting, class-balanced.
- ``mlp``: one hidden layer (tanh), class-balanced cross-entropy + L2, L-BFGS in numpy (no torch).
- ``conv``: a small 3-D convolutional head (torch) on the neighbourhood of each point (the vectors projected
  on their leading principal directions, a few grid points around), added to a linear read-out of the point's
  own inputs: context learned from the labels instead of fixed Gaussians.

scikit-learn and torch are imported when a read-out that needs them is built, never at import time.
Every read-out has the segmenter interface (:class:`~.knn.SliceFirst`: the visible slice first, then the
whole grid in slabs with progress and cancel); a slice equals the whole grid's result there (the slab it is
computed from holds the context's and the smoothing's halo). Measured on `seisfm bench` (docs/quality.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import SeisfmCancelled, SeisfmError
from .context import radius, reach, smooth_box
from .knn import Segmentation, box_index, valid_support
from .linear import Standardiser, softmax_
from .linear_segmenter import CONTEXT, SMOOTH, SmoothedSegmenter, make_context, parse_smooth
from .matrix import FeatureMatrix

SLAB_POINTS = 1 << 19  # grid points per slab of the whole-grid pass (inputs: points x dim x (1 + scales) float32)


def _threads(threads) -> int:
    return max(1, int(threads or min(2, len(os.sched_getaffinity(0)))))


class Inputs:
    """A read-out's inputs: the standardised vector and its context columns, at points or on boxes."""

    def __init__(self, features: FeatureMatrix, context):
        self.features = features
        self.standardise = Standardiser.of(features)
        self.context = make_context(features, self.standardise, context)

    @property
    def scales(self) -> tuple:
        return self.context.scales if self.context is not None else ()

    @property
    def dim(self) -> int:
        return self.features.dim * (1 + len(self.scales))

    @property
    def reach(self) -> tuple[int, int, int]:
        return reach(self.scales)

    def z(self, flat: np.ndarray) -> np.ndarray:
        """Standardised vectors of flat grid indices, 0 (the mean) where invalid."""
        fm = self.features
        z = self.standardise(fm.decode(fm.vectors[flat]))
        z[~fm.valid[flat]] = 0.0
        return z

    def at(self, flat: np.ndarray) -> np.ndarray:
        """(n, dim) inputs at flat grid indices (the training rows)."""
        z = self.z(flat)
        if self.context is None:
            return z
        return np.hstack([z, self.context.at(np.stack(np.unravel_index(flat, self.features.shape), 1))])

    def box(self, region) -> np.ndarray:
        """(region's shape..., dim) inputs on a box of the grid (three explicit slices)."""
        fm = self.features
        if self.context is None:
            _, sub, flat = box_index(fm.shape, region)
            return self.z(flat).reshape(*sub, -1)
        outer = tuple(slice(max(r.start - h, 0), min(r.stop + h, n)) for r, n, h in zip(region, fm.shape, self.reach))
        _, osub, oflat = box_index(fm.shape, outer)
        z_outer = self.z(oflat).reshape(*osub, -1)
        keep = tuple(slice(r.start - o.start, r.stop - o.start) for r, o in zip(region, outer))
        return np.concatenate([z_outer[keep], self.context.box(z_outer, outer, region)], axis=-1)


class FeatureReadout(SmoothedSegmenter):
    """A classifier on the inputs of labelled grid points (class ids > 0) + smoothing of its probabilities.

    Subclasses implement ``_fit(X, y, n_classes, weights)`` (``weights``: one per row, mean 1; class-balanced for
    labelled points) and ``_predict(X) -> (n, C) float32 probabilities``;
    ``model_reach`` is the neighbourhood (grid points per axis) a model reads around a point beyond its own
    inputs (the conv head's receptive field), 0 for point-wise models.
    """

    method = "readout"
    model_reach = (0, 0, 0)
    OPTIONS: dict = {}  # the model's own options and their defaults

    def __init__(self, features: FeatureMatrix, points, classes, **options):
        """``smooth`` (grid points, one or three sigmas), ``context`` (scales, as the linear read-out's),
        ``seed``, ``threads`` (worker threads of the whole-grid pass), and the model's own :attr:`OPTIONS`."""
        self._configure(features, **options)
        self.support_flat, self.support_class, self.class_ids = valid_support(features, points, classes)
        self._fit_support(None)

    @classmethod
    def on_rows(cls, features: FeatureMatrix, flat, y, weights, *, class_ids=(0, 1), inputs=None, **options) -> FeatureReadout:
        """A read-out fitted on chosen grid rows (flat indices, valid) with classes ``y`` (0..C-1) and row
        ``weights``, e.g. a click decision's clicks and background sample; ``inputs``: their inputs when the
        caller has them (:meth:`Inputs.at` of the same context), else computed."""
        self = cls.__new__(cls)
        self.support_flat, self.support_class = np.asarray(flat, int), np.asarray(y, int)
        self.class_ids = tuple(class_ids)
        self._configure(features, **options)
        self._fit_support(np.asarray(weights, float), inputs)
        return self

    def _configure(self, features, **options):
        """Options that are not the labelled points: the model's own, smoothing, context, seed, threads."""
        for name, default in self.OPTIONS.items():
            setattr(self, name, options.pop(name, default))
        self._check()
        smooth, context = options.pop("smooth", SMOOTH), options.pop("context", CONTEXT)
        seed, threads = options.pop("seed", 0), options.pop("threads", None)
        if options:
            raise TypeError(f"{type(self).__name__}: unknown options {sorted(options)}")
        self.features = features
        self.smooth = parse_smooth(smooth)
        self.seed = int(seed)
        self.threads = _threads(threads)
        self.inputs = Inputs(features, context)

    def _fit_support(self, weights, X=None) -> None:
        t0 = time.perf_counter()
        X = self.inputs.at(self.support_flat) if X is None else X
        C = len(self.class_ids)
        y = self.support_class
        self._fit(X, y, C, self._balanced(y, C) if weights is None else weights * (len(y) / weights.sum()))
        self.fit_seconds = time.perf_counter() - t0

    @property
    def scales(self) -> tuple:
        return self.inputs.scales

    @property
    def n_support(self) -> int:
        return len(self.support_flat)

    @property
    def halo(self) -> tuple[int, int, int]:
        """Grid points around a region that its result depends on: smoothing + the model's + the context's reach."""
        return tuple(a + b + c for a, b, c in zip(radius(self.smooth), self.model_reach, self.inputs.reach))

    # ------------------------------------------------------------------ subclass hooks
    def _check(self) -> None:
        """Refuse bad model options (SeisfmError)."""

    def _fit(self, X: np.ndarray, y: np.ndarray, n_classes: int, weights: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _predict_box(self, region) -> np.ndarray:
        """(region's shape..., C) probabilities on a box: the inputs there, the model row by row."""
        X = self.inputs.box(region)
        shape = X.shape[:-1]
        return self._predict(X.reshape(-1, X.shape[-1])).reshape(*shape, -1)

    def _balanced(self, y: np.ndarray, n_classes: int) -> np.ndarray:
        """Per-row weights: every class weighs the same in total (as the linear read-out's fit)."""
        counts = np.bincount(y, minlength=n_classes).astype(float)
        return len(y) / (n_classes * counts[y])

    # ------------------------------------------------------------------ regions
    def _probabilities_box(self, region) -> tuple[np.ndarray, np.ndarray]:
        fm = self.features
        _, sub, flat = box_index(fm.shape, region)
        valid = fm.valid[flat].reshape(sub)
        probs = np.ascontiguousarray(self._predict_box(region), dtype=np.float32)
        probs[~valid] = 0
        return probs, valid

    def segment_region(self, region) -> Segmentation:
        """A box of the grid (three slices): probabilities on the box plus the smoothing's halo, smoothed, cropped."""
        fm = self.features
        region = box_index(fm.shape, region)[0]
        r = radius(self.smooth)
        outer = tuple(slice(max(s.start - h, 0), min(s.stop + h, n)) for s, n, h in zip(region, fm.shape, r))
        probs, valid = self._probabilities_box(outer)
        probs = self._smoothed(probs, valid)
        crop = tuple(slice(a.start - o.start, a.stop - o.start) for a, o in zip(region, outer))
        return self._result(np.ascontiguousarray(probs[crop]), valid[crop], region)

    def segment(
        self,
        *,
        batch: int = SLAB_POINTS,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Segmentation:
        """The whole grid: slabs of inlines (inputs with their halo, the model), then the smoothing.

        ``progress(done, total)`` counts grid points, the smoothing reported as a second pass over the grid;
        ``cancel()`` True stops with SeisfmCancelled."""
        fm = self.features
        n0, n1, n2 = fm.shape
        n, C = fm.grid.size, len(self.class_ids)
        steps = C if any(self.smooth) else 0
        total = 2 * n if steps else n
        rows = max(1, int(batch) // (n1 * n2))
        probs = np.empty((n0, n1, n2, C), np.float32)
        slabs = [(a, min(a + rows, n0)) for a in range(0, n0, rows)]

        def one(slab):
            a, b = slab
            if cancel is not None and cancel():
                raise SeisfmCancelled(f"segmentation stopped after {a * n1 * n2} of {n} grid points")
            probs[a:b] = self._probabilities_box((slice(a, b), slice(0, n1), slice(0, n2)))[0]
            return b - a

        # slabs on worker threads (the models and the smoothing release the GIL), at most `threads` in flight
        done_rows = 0
        with ThreadPoolExecutor(self.threads) as pool:
            pending = set()
            for slab in slabs:
                pending.add(pool.submit(one, slab))
                if len(pending) >= self.threads:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        done_rows += f.result()
                        if progress is not None:
                            progress(done_rows * n1 * n2, total)
            for f in pending:
                done_rows += f.result()
                if progress is not None:
                    progress(done_rows * n1 * n2, total)
        valid = fm.valid.reshape(fm.shape)
        done = [0]

        def step():
            if cancel is not None and cancel():
                raise SeisfmCancelled("segmentation stopped while smoothing")
            done[0] += 1
            if progress is not None:
                progress(n + n * done[0] // steps, total)

        probs = self._smoothed(probs, valid, step)
        return self._result(probs, valid, tuple(slice(0, s) for s in fm.shape))


# ---------------------------------------------------------------------- scikit-learn models
def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:  # pragma: no cover - a declared dependency
        raise SeisfmError("this read-out needs scikit-learn: pip install scikit-learn") from None


class ForestSegmenter(FeatureReadout):
    """Random forest (scikit-learn), class-balanced bootstrap samples; ``trees`` trees of at most ``depth``
    levels (None: grown until pure), ``sqrt(dim)`` inputs tried per split."""

    method = "forest"
    OPTIONS = {"trees": 100, "depth": None, "min_leaf": 1}

    def _check(self):
        if int(self.trees) < 1 or int(self.min_leaf) < 1:
            raise SeisfmError(
                f"a forest needs at least one tree and leaves of one point or more, got {self.trees}, {self.min_leaf}"
            )

    def _fit(self, X, y, n_classes, weights):
        _sklearn()
        from sklearn.ensemble import RandomForestClassifier

        self.model = RandomForestClassifier(
            n_estimators=self.trees,
            max_depth=self.depth,
            min_samples_leaf=self.min_leaf,
            n_jobs=self.threads,
            random_state=self.seed,
        )
        with threadpool_limits(limits=1):
            self.model.fit(X, y, sample_weight=weights)

    def _predict(self, X):
        with threadpool_limits(limits=1):
            return self.model.predict_proba(X).astype(np.float32)


class BoostingSegmenter(FeatureReadout):
    """Histogram gradient boosting (scikit-learn, LightGBM's algorithm): ``rounds`` rounds of trees with
    ``leaves`` leaves, learning rate ``rate``, class-balanced, no early stopping (few labels)."""

    method = "boosting"
    OPTIONS = {"rounds": 100, "rate": 0.1, "leaves": 15}

    def _check(self):
        if int(self.rounds) < 1 or not float(self.rate) > 0 or int(self.leaves) < 2:
            raise SeisfmError(
                f"boosting needs rounds >= 1, rate > 0 and leaves >= 2, got {self.rounds}, {self.rate}, {self.leaves}"
            )

    def _fit(self, X, y, n_classes, weights):
        _sklearn()
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.model = HistGradientBoostingClassifier(
            max_iter=self.rounds,
            learning_rate=self.rate,
            max_leaf_nodes=self.leaves,
            early_stopping=False,
            random_state=self.seed,
        )
        # one OpenMP thread: its threads spin-wait while the other core is busy (measured 3-20 x slower on a
        # shared 2-core machine, docs/scale.md "Threads on a busy machine"); the whole-grid pass runs slabs on worker threads instead
        with threadpool_limits(limits=1):
            self.model.fit(X, y, sample_weight=weights)

    def _predict(self, X):
        with threadpool_limits(limits=1):
            return self.model.predict_proba(X).astype(np.float32)


# ---------------------------------------------------------------------- MLP (numpy)
def fit_mlp(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    hidden: int = 32,
    l2: float = 1e-2,
    weights=None,
    seed: int = 0,
    max_iter: int = 300,
):
    """One hidden layer, tanh: minimises the weighted mean cross-entropy + ``l2 / 2 * |W|^2`` (both weight
    matrices; biases free) with L-BFGS from a seeded start. Returns (W1, b1, W2, b2) float32."""
    from scipy import optimize

    X = np.asarray(X, np.float64)
    n, d = X.shape
    H, C = int(hidden), int(n_classes)
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    onehot = np.zeros((n, C))
    onehot[np.arange(n), y] = 1.0
    rng = np.random.default_rng(seed)
    sizes = [(d, H), (H,), (H, C), (C,)]
    theta0 = np.concatenate(
        [rng.normal(0, 1 / np.sqrt(d), d * H), np.zeros(H), rng.normal(0, 1 / np.sqrt(H), H * C), np.zeros(C)]
    )

    def unpack(theta):
        out, at = [], 0
        for s in sizes:
            k = int(np.prod(s))
            out.append(theta[at : at + k].reshape(s))
            at += k
        return out

    def loss_and_grad(theta):
        W1, b1, W2, b2 = unpack(theta)
        h = np.tanh(X @ W1 + b1)
        logits = h @ W2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = -(w * np.log(p[np.arange(n), y] + 1e-300)).sum() + 0.5 * l2 * ((W1 * W1).sum() + (W2 * W2).sum())
        g = (p - onehot) * w[:, None]
        gW2 = h.T @ g + l2 * W2
        gh = (g @ W2.T) * (1 - h * h)
        gW1 = X.T @ gh + l2 * W1
        return loss, np.concatenate([gW1.ravel(), gh.sum(0), gW2.ravel(), g.sum(0)])

    with threadpool_limits(limits=1, user_api="blas"):
        r = optimize.minimize(loss_and_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return tuple(a.astype(np.float32) for a in unpack(r.x))


class MlpSegmenter(FeatureReadout):
    """A small MLP: ``hidden`` tanh units, L2 ``l2``, class-balanced, fitted with L-BFGS (numpy, no torch)."""

    method = "mlp"
    OPTIONS = {"hidden": 32, "l2": 1e-2}

    def _check(self):
        if int(self.hidden) < 1 or not float(self.l2) >= 0:
            raise SeisfmError(f"the MLP needs hidden >= 1 and l2 >= 0, got {self.hidden}, {self.l2}")

    def _fit(self, X, y, n_classes, weights):
        self.params = fit_mlp(X, y, n_classes, hidden=self.hidden, l2=self.l2, weights=weights, seed=self.seed)

    def _fit_support(self, weights, X=None) -> None:
        super()._fit_support(weights, X)
        # the first layer is linear, so it folds onto the context as the linear read-out does: the hidden
        # pre-activations are z W_0 + sum_s G_s(z W_s) + b (the re-standardisation in W_s and b), so a box
        # needs H channels smoothed per fine scale instead of every input column (H < dim), and the wide
        # scales' contribution is made on their pooled grid once
        W1, b1, _, _ = self.params
        d, ctx = self.features.dim, self.inputs.context
        b = b1.astype(np.float64)
        self._fine, self._wide = [], []
        blocks = [W1[:d]]
        for i, sigma3 in enumerate(self.scales):
            Wi = W1[d * (1 + i) : d * (2 + i)] / ctx.std[i][:, None]
            b -= ctx.mean[i] @ Wi
            if ctx.is_wide(i):
                pooled, coarse = ctx.pooled(i)
                self._wide.append((pooled, (coarse @ Wi).astype(np.float32)))
            else:
                blocks.append(Wi)
                self._fine.append(sigma3)
        self._first = np.hstack(blocks).astype(np.float32)  # (d, H * (1 + fine scales))
        self._first_bias = b.astype(np.float32)

    def _hidden_box(self, region) -> np.ndarray:
        """(region's shape..., H) hidden pre-activations on a box, folded (see :meth:`_fit_support`)."""
        fm = self.features
        H = int(self.hidden)
        outer = tuple(slice(max(r.start - h, 0), min(r.stop + h, n)) for r, n, h in zip(region, fm.shape, self.inputs.reach))
        _, osub, oflat = box_index(fm.shape, outer)
        keep = tuple(slice(r.start - o.start, r.stop - o.start) for r, o in zip(region, outer))
        channels = np.empty((len(oflat), self._first.shape[1]), np.float32)
        for a in range(0, len(oflat), 1 << 16):
            channels[a : a + (1 << 16)] = self.inputs.z(oflat[a : a + (1 << 16)]) @ self._first
        channels = channels.reshape(*osub, -1)
        h = channels[keep][..., :H] + self._first_bias
        for i, sigma3 in enumerate(self._fine):
            h += smooth_box(channels[..., H * (1 + i) : H * (2 + i)], sigma3, keep)
        for pooled, coarse in self._wide:
            h += pooled.box(coarse, region)
        return h

    def _predict_box(self, region):
        _, _, W2, b2 = self.params
        h = np.tanh(self._hidden_box(region))
        return softmax_(h @ W2 + b2)

    def _predict(self, X):
        W1, b1, W2, b2 = self.params
        out = np.empty((len(X), W2.shape[1]), np.float32)
        for a in range(0, len(X), 1 << 16):
            h = np.tanh(X[a : a + (1 << 16)] @ W1 + b1)
            out[a : a + (1 << 16)] = softmax_(h @ W2 + b2)
        return out


# ---------------------------------------------------------------------- conv head (torch)
class ConvSegmenter(FeatureReadout):
    """A small 3-D convolutional head: the vectors of a point's neighbourhood (projected on their ``channels``
    leading principal directions) through two 3x3x3 convolutions (dilation 1, then 2: a reach of 3 grid
    points), added to a linear read-out of the point's own inputs (vector + context columns). Trained with
    Adam (full batch, ``epochs`` steps) on the labelled points and their neighbourhoods, class-balanced
    cross-entropy + ``l2 / 2 * |W|^2``; torch on the CPU."""

    method = "conv"
    OPTIONS = {"channels": 8, "hidden": 16, "epochs": 60, "lr": 1e-2, "l2": 0.1, "axes": (1, 1, 1)}

    def _check(self):
        """``axes``: 1 where the head convolves along a grid axis, 0 where neighbours are unrelated (a stack
        of image patches: ``(0, 1, 1)``, a 2-D head)."""
        if min(int(self.channels), int(self.hidden), int(self.epochs)) < 1 or not float(self.lr) > 0:
            raise SeisfmError(
                f"the conv head needs channels, hidden and epochs >= 1 and lr > 0, got {self.channels}, "
                f"{self.hidden}, {self.epochs}, {self.lr}"
            )
        self.axes = tuple(int(bool(a)) for a in np.broadcast_to(np.asarray(self.axes), (3,)))

    @property
    def model_reach(self) -> tuple[int, int, int]:
        return tuple(3 * a for a in self.axes)

    def _fit_support(self, weights, X=None) -> None:
        self._basis = self._principal_basis(self.features, int(self.channels))
        super()._fit_support(weights, X)

    @staticmethod
    def _principal_basis(features, k: int) -> np.ndarray:
        """(dim, k): the leading principal directions of the standardised vectors (a seeded sample)."""
        st = Standardiser.of(features)
        valid = np.flatnonzero(features.valid)
        take = np.sort(np.random.default_rng(0).choice(valid, min(20_000, len(valid)), replace=False))
        z = st(features.decode(features.vectors[take]))
        _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
        return np.ascontiguousarray(vt[:k].T.astype(np.float32))

    def _network(self, n_in: int, n_classes: int):
        import torch
        from torch import nn

        torch.manual_seed(self.seed)
        k, h = self._basis.shape[1], self.hidden
        size = tuple(1 + 2 * a for a in self.axes)

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Sequential(
                    nn.Conv3d(k, h, size), nn.GELU(), nn.Conv3d(h, h, size, dilation=2), nn.GELU(), nn.Conv3d(h, n_classes, 1)
                )
                self.point = nn.Linear(n_in, n_classes)

            def forward(self, patches, centre):
                """patches (n, k, a+6, b+6, c+6) -> (n, C, a, b, c); centre (n, a, b, c, n_in)."""
                return self.conv(patches) + self.point(centre).permute(0, 4, 1, 2, 3)

        return Head()

    def _patches(self, flat: np.ndarray) -> np.ndarray:
        """(n, k, 7, 7, 7) projected neighbourhoods of grid points (edges repeated, invalid as z = 0; 1 along an
        axis the head does not convolve)."""
        fm = self.features
        pts = np.stack(np.unravel_index(flat, fm.shape), 1)
        offs = [np.arange(-r, r + 1) for r in self.model_reach]
        idx = [np.clip(pts[:, ax, None] + offs[ax][None, :], 0, fm.shape[ax] - 1) for ax in range(3)]
        nb = (
            (idx[0][:, :, None, None] * fm.shape[1] + idx[1][:, None, :, None]) * fm.shape[2] + idx[2][:, None, None, :]
        ).reshape(-1)
        proj = self.inputs.z(nb) @ self._basis
        m = [len(o) for o in offs]
        return np.ascontiguousarray(proj.reshape(len(flat), *m, -1).transpose(0, 4, 1, 2, 3))

    def _fit(self, X, y, n_classes, weights):
        import torch

        net = self._network(X.shape[1], n_classes)
        patches = torch.from_numpy(self._patches(self.support_flat))
        centre = torch.from_numpy(np.ascontiguousarray(X, np.float32))[:, None, None, None, :]
        target = torch.from_numpy(np.asarray(y, np.int64))
        weight = torch.from_numpy(np.asarray(weights, np.float32))
        weight = weight / weight.sum()
        params = list(net.parameters())
        # Adam written out (torch.optim imports torch._dynamo on first use: seconds on a cold start)
        m1 = [torch.zeros_like(p) for p in params]
        m2 = [torch.zeros_like(p) for p in params]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small convolutions: a second thread costs more than it gives (and spins on busy cores)
        try:
            for step in range(1, self.epochs + 1):
                logits = net(patches, centre)[:, :, 0, 0, 0]
                ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
                loss = (weight * ce).sum() + 0.5 * self.l2 * sum((p * p).sum() for p in params if p.ndim > 1)
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    for p, g, a, b in zip(params, grads, m1, m2):
                        a.mul_(0.9).add_(g, alpha=0.1)
                        b.mul_(0.999).addcmul_(g, g, value=0.001)
                        p.sub_(self.lr * (a / (1 - 0.9**step)) / ((b / (1 - 0.999**step)).sqrt() + 1e-8))
        finally:
            torch.set_num_threads(threads)
        self.net = net.eval()
        self.final_loss = float(loss.detach())

    def _predict_box(self, region):
        import torch

        fm = self.features
        r = self.model_reach
        X = self.inputs.box(region)
        outer = tuple(slice(max(s.start - h, 0), min(s.stop + h, n)) for s, n, h in zip(region, fm.shape, r))
        _, osub, oflat = box_index(fm.shape, outer)
        proj = (self.inputs.z(oflat) @ self._basis).reshape(*osub, -1)
        # repeat the grid's edge where the box meets it (as the training patches do), then valid convolutions
        pad = [(h - (s.start - o.start), h - (o.stop - s.stop)) for s, o, h in zip(region, outer, r)]
        proj = np.pad(proj, pad + [(0, 0)], mode="edge")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                logits = self.net(
                    torch.from_numpy(np.ascontiguousarray(proj.transpose(3, 0, 1, 2)))[None], torch.from_numpy(X)[None]
                )[0]
        finally:
            torch.set_num_threads(threads)
        return softmax_(np.ascontiguousarray(logits.numpy().transpose(1, 2, 3, 0)))


READOUTS = {"forest": ForestSegmenter, "boosting": BoostingSegmenter, "mlp": MlpSegmenter, "conv": ConvSegmenter}
