"""Linear read-outs of the stored vectors: standardisation and (multinomial) logistic regression.

Why a linear model: the stored vectors are unit-length mixtures of attributes (or PCA components of a
ViT) whose scales differ by orders of magnitude, and a target usually depends on a few of them. A
cosine (kNN, centroid similarity) weighs every dimension by its variance; a logistic regression fitted
on standardised vectors learns which dimensions matter from the same few labels, in milliseconds
(a few hundred points x 64 dimensions, L-BFGS). Measured on `seisfm bench` (docs/quality.md), it lifts
both the click maps and the segmentation from sparse labels well above the cosine rules.

The model is folded back onto the raw stored vectors: ``logits = decode(x) @ W + b`` with the
standardisation inside ``W`` and ``b``, so applying it to a whole cube is one GEMM over the stored
matrix (a matrix-vector product with the project's SIMD dot kernels for a binary probe).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from ..errors import SeisfmError
from .matrix import FeatureMatrix

STATS_SAMPLE = 200_000  # rows that estimate the per-dimension mean and spread (plenty for 64 numbers)
MIN_SPREAD = 1e-4  # dimensions flatter than this (after int8 decoding: constant) are not amplified


@dataclass(frozen=True)
class Standardiser:
    """Per-dimension mean and standard deviation of a feature matrix's valid vectors (a seeded sample)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, features: FeatureMatrix, *, sample: int = STATS_SAMPLE, seed: int = 0) -> Standardiser:
        cached = getattr(features, "_standardiser", None)
        if cached is not None:
            return cached
        valid = np.flatnonzero(features.valid)
        if len(valid) == 0:
            raise SeisfmError(f"{features.name}: no valid embeddings")
        if len(valid) > sample:
            valid = np.sort(np.random.default_rng(seed).choice(valid, sample, replace=False))
        x = features.decode(features.vectors[valid])
        std = x.std(axis=0)
        out = cls(x.mean(axis=0).astype(np.float32), np.where(std > MIN_SPREAD, std, 1.0).astype(np.float32))
        features._standardiser = out  # the matrix is read-only: its statistics never change
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) - self.mean) / self.std


@dataclass(frozen=True)
class LinearModel:
    """``logits = decode(stored) @ weight + bias`` for every class (standardisation folded in)."""

    weight: np.ndarray  # float32 (dim, C)
    bias: np.ndarray  # float32 (C,)

    def logits(self, features: FeatureMatrix, rows: np.ndarray) -> np.ndarray:
        """Logits of stored rows (any dtype the matrix holds), float32 ``(len(rows), C)``."""
        return features.decode(rows) @ self.weight + self.bias

    def binary_query(self) -> tuple[np.ndarray, float]:
        """For two classes: (q, c) with ``logit(class 1) - logit(class 0) = decode(x) . q + c``."""
        if self.weight.shape[1] != 2:
            raise ValueError("binary_query needs a two-class model")
        return (self.weight[:, 1] - self.weight[:, 0]).astype(np.float32), float(self.bias[1] - self.bias[0])


def fit_logistic(
    z: np.ndarray, y: np.ndarray, n_classes: int, *, weights: np.ndarray | None = None, l2=1e-2, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on standardised rows ``z`` (n, d), classes ``y`` in 0..C-1.

    Minimises the weighted mean cross-entropy plus ``l2 / 2 * |W|^2`` (the bias is not penalised; ``l2`` may
    be one number per input column, to make some inputs dearer than others) with
    L-BFGS; ``weights`` default to class-balanced (every class weighs the same in total), so a class with
    many painted points does not drown a class with a few. Returns (W (d, C), b (C,)) in float64.
    """
    # Small problems: one BLAS thread. OpenBLAS's threads on a few-thousand-row product cost more than they
    # save, and on a busy 2-core machine they stall (measured: 5-15 ms single-threaded, 25-550 ms threaded).
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_logistic(z, y, n_classes, weights, l2, max_iter)


def _fit_logistic(z, y, n_classes, weights, l2, max_iter):
    z = np.asarray(z, np.float64)
    y = np.asarray(y, int)
    n, d = z.shape
    l2 = np.broadcast_to(np.asarray(l2, np.float64), (d,))
    if weights is None:
        counts = np.bincount(y, minlength=n_classes).astype(float)
        weights = 1.0 / (n_classes * counts[y])
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    if n_classes == 2:
        return _fit_binary_newton(z, y, w, l2)
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0

    def loss_and_grad(theta):
        W = theta[: d * n_classes].reshape(d, n_classes)
        logits = z @ W + theta[d * n_classes :]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = -(w * np.log(p[np.arange(n), y] + 1e-300)).sum() + 0.5 * (l2[:, None] * W * W).sum()
        g = (p - onehot) * w[:, None]
        return loss, np.concatenate([(z.T @ g + l2[:, None] * W).ravel(), g.sum(axis=0)])

    r = optimize.minimize(
        loss_and_grad, np.zeros(d * n_classes + n_classes), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    return r.x[: d * n_classes].reshape(d, n_classes), r.x[d * n_classes :]


def _fit_binary_newton(z, y, w, l2, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: Newton's method on the same objective (d + 1 parameters, converges in ~10 steps, a few
    ms: the click probe refits on every click). Returned as the equivalent two-class softmax weights."""
    n, d = z.shape
    x = np.hstack([z, np.ones((n, 1))])
    reg = np.append(l2, 0.0)
    theta = np.zeros(d + 1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -50, 50)))
        grad = x.T @ (w * (p - y)) + reg * theta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-7:
            break
    W = np.zeros((d, 2))
    W[:, 1] = theta[:d]
    return W, np.array([0.0, theta[d]])


def fit_linear_model(
    features: FeatureMatrix,
    flat_index: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    weights: np.ndarray | None = None,
    l2: float = 1e-2,
) -> LinearModel:
    """Fit on the stored vectors at ``flat_index`` and fold the standardisation into the weights."""
    st = Standardiser.of(features)
    x = features.decode(features.vectors[np.asarray(flat_index, int)])
    W, b = fit_logistic(st(x), y, n_classes, weights=weights, l2=l2)
    weight = W / st.std[:, None].astype(np.float64)
    bias = b - st.mean.astype(np.float64) @ weight
    return LinearModel(weight.astype(np.float32), bias.astype(np.float32))


def softmax_(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in place (float32), returned for chaining."""
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    return logits
