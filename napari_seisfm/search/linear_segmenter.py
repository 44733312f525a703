"""Segmentation from sparse labels with a linear read-out and spatially coherent class probabilities.

kNN (k = 5) is the NCS paper's protocol for *measuring* embeddings; it is not the best map a user can
get from the same labels. This segmenter fits a multinomial logistic regression on the standardised
vectors of the labelled points (:mod:`.linear`: class-balanced, L2, a few milliseconds), applies it to
every grid point (one GEMM per block over the stored matrix) and smooths each class's probability with
a 3-D Gaussian of ``smooth`` grid points before taking the most probable class. Geological units are
spatially coherent, single grid points that disagree with their neighbours are mostly noise, and the
smoothing removes them (docs/quality.md has the measured effect). Invalid grid points (dead traces, NaN)
take no part: the smoothing is normalised by the valid neighbours only.

Same interface as :class:`~napari_seisfm.search.KnnSegmenter` (slice first, then the whole grid with
progress and cancel); the slice is exactly the whole-grid result on that slice (the slab it is computed
from carries the smoothing's halo).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from ..errors import SeisfmCancelled, SeisfmError
from ..method_names import CONTEXT, SMOOTH
from .context import TRUNCATE, Context, radius, reach, smooth_grid
from .knn import Segmentation, SliceFirst, box_index, valid_support
from .linear import Standardiser, fit_logistic, softmax_
from .matrix import FeatureMatrix

# The defaults SMOOTH and CONTEXT live in method_names.py (names and values only, so the CLI lists them
# without importing this module). SMOOTH, chosen on `seisfm bench`'s dev seeds 0-2 at 96^3 (docs/quality.md):
# smoothing 0, 1, 2, 3 x L2 1e-3, 1e-2, 1e-1 without context: mean mIoU over the synthetic tasks 0.45-0.57,
# best at 1 grid point and 1e-3.
L2 = 1e-3
# Context scales (grid points): dev seeds, L2 1e-3, mean mIoU none 0.571, (1.5,) 0.586, (1.5, 3) 0.589, (2, 4)
# 0.589; packages 0.561 -> 0.692 with (1.5, 3) (search/context.py, docs/quality.md). Then the wide scales 6 and 12
# (pooled grid, issue 22), dev seeds 0-2, attributes: synthetic mean 0.576 -> 0.580, TGS salt 0.579 -> 0.604
# (benchmarks/sweep_defaults.py readouts); the same option for every read-out.
# The context columns' L2 is this many times the vector's own (benchmarks/sweep_defaults.py context-penalty,
# dev seeds: mean mIoU 0.589 at 1, 0.585 at 10, 0.574 at 100, the same within seed noise). 10, because with
# a few painted points, the dock's usual case, an unpenalised context leaks across class boundaries
# (tests/test_decisions.py: 3 + 3 points on two clean halves, 202 of 4096 points wrong at 1, none at 10).
CONTEXT_PENALTY = 10.0
BLOCK = 1 << 16  # rows per GEMM block


def parse_smooth(smooth) -> tuple[float, float, float]:
    """The probability smoothing as per-axis sigmas; a bad value is a SeisfmError."""
    try:
        sigma = np.broadcast_to(np.asarray(smooth, float), (3,))
    except (TypeError, ValueError):
        sigma = np.array([np.nan])
    if not np.isfinite(sigma).all() or (sigma < 0).any():
        raise SeisfmError(f"smoothing must be 0 or more grid points (one number or three), got {smooth!r}")
    return tuple(float(v) for v in sigma)


def make_context(features, standardise, context) -> Context | None:
    try:
        return Context(features, standardise, context) if context else None
    except ValueError as exc:
        raise SeisfmError(str(exc)) from None


class SmoothedSegmenter(SliceFirst):
    """What every probability read-out shares: class probabilities smoothed over valid grid points, the
    most probable class, and its confidence. Subclasses set ``features``, ``smooth``, ``class_ids``."""

    def _smoothed(self, probs: np.ndarray, valid: np.ndarray, step=None) -> np.ndarray:
        """Normalised Gaussian smoothing of grid-shaped ``probs`` (..., C) over valid points, in place."""
        if not any(self.smooth):
            return probs
        weight = smooth_grid(valid[..., None].astype(np.float32), self.smooth)[..., 0]
        smooth_grid(probs, self.smooth, out=probs, step=step)
        with np.errstate(invalid="ignore", divide="ignore"):
            probs /= weight[..., None]
        probs[~valid] = 0
        return probs

    def _result(self, probs: np.ndarray, valid: np.ndarray, region) -> Segmentation:
        best = np.argmax(probs, axis=-1)
        classes = np.where(valid, np.asarray(self.class_ids, np.int32)[best], 0).astype(np.int32)
        conf = np.where(valid, np.take_along_axis(probs, best[..., None], -1)[..., 0], np.nan).astype(np.float32)
        return Segmentation(classes, probs, conf, self.class_ids, region)


class LinearSegmenter(SmoothedSegmenter):
    """Logistic regression on labelled grid points (class ids > 0) + Gaussian smoothing of the probabilities."""

    method = "linear"

    def __init__(
        self,
        features: FeatureMatrix,
        points,
        classes,
        *,
        smooth=SMOOTH,
        l2: float = L2,
        context=CONTEXT,
        context_penalty: float = CONTEXT_PENALTY,
    ):
        """``smooth``: Gaussian sigma in grid points, one number or one per axis (0 on an axis whose
        neighbours are unrelated, e.g. a stack of image patches). ``context``: scales (grid points, or
        per-axis triples) at which the smoothed vectors join the model's inputs (search/context.py)."""
        self.features = features
        self.smooth = parse_smooth(smooth)
        self.support_flat, self.support_class, self.class_ids = valid_support(features, points, classes)
        st = Standardiser.of(features)
        self.context = make_context(features, st, context)
        z = st(features.decode(features.vectors[self.support_flat]))
        if self.context is not None:
            z = np.hstack([z, self.context.at(np.stack(np.unravel_index(self.support_flat, features.shape), 1))])
        # context columns cost CONTEXT_PENALTY times more: the model leans on a point's own vector and takes
        # the neighbourhood only where that pays, so boundaries are not blurred (see the constant)
        penalty = np.full(z.shape[1], float(l2))
        penalty[features.dim :] *= context_penalty
        W, b = fit_logistic(z, self.support_class, len(self.class_ids), l2=penalty)
        # channels = z @ weights: the plain logits, then one logit contribution per fine context scale (smoothed
        # later); a wide scale's contribution is made on its pooled grid once (pooled z @ W_i) and interpolated
        d = features.dim
        blocks, bias = [W[:d]], b.copy()
        self._fine, self._wide = [], []
        for i in range(len(self.scales)):
            Wi = W[d * (1 + i) : d * (2 + i)] / self.context.std[i][:, None]
            bias -= self.context.mean[i] @ Wi
            if self.context.is_wide(i):
                pooled, coarse = self.context.pooled(i)
                self._add_wide(pooled, coarse @ Wi)
            else:
                blocks.append(Wi)
                self._fine.append(self.scales[i])
        weights = np.hstack(blocks)  # (d, C * (1 + fine scales)) on the standardised vectors
        decode = 1.0 / features.quant_scale if features.dtype == "int8" else 1.0
        self._wx = (weights / st.std[:, None] * decode).astype(np.float32)  # ... on the stored values
        self._wc = (-(st.mean / st.std) @ weights).astype(np.float32)
        self._bias = bias.astype(np.float32)

    def _add_wide(self, pooled, coarse_logits) -> None:
        """A wide scale's logit contribution on its pooled grid; scales on the same pooled grid are summed
        there, so one interpolation serves them all (interpolation is linear)."""
        for j, (p, c) in enumerate(self._wide):
            if p is pooled:
                self._wide[j] = (p, (c + coarse_logits).astype(np.float32))
                return
        self._wide.append((pooled, np.asarray(coarse_logits, np.float32)))

    @property
    def scales(self) -> tuple:
        return self.context.scales if self.context is not None else ()

    @property
    def n_support(self) -> int:
        return len(self.support_flat)

    @property
    def halo(self) -> tuple[int, int, int]:
        """Grid points around a region that its result depends on: the context's reach plus the smoothing's."""
        return tuple(r + c for r, c in zip(radius(self.smooth), reach(self.scales)))

    # ------------------------------------------------------------------ pieces
    def _channels(self, rows: np.ndarray, valid: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(1 + fine scales, C, n) logit channels of stored rows, channel first (each one contiguous for the
        smoothing); invalid rows count as the mean vector (z = 0, every channel 0). The standardisation and the
        int8 decoding are folded into the weights: one float32 product per block."""
        n = len(rows)
        out = np.empty((self._wx.shape[1], n), np.float32) if out is None else out
        for a in range(0, n, BLOCK):
            b = min(a + BLOCK, n)
            block = rows[a:b].astype(np.float32) @ self._wx
            block += self._wc
            block[~valid[a:b]] = 0.0
            out[:, a:b] = block.T
        return out.reshape(1 + len(self._fine), len(self.class_ids), n)

    def _probabilities(self, channels: np.ndarray, valid: np.ndarray, box, step=None) -> np.ndarray:
        """Channel-first grid-shaped channels (1 + fine scales, C, ...) on ``box`` (three slices of the grid) ->
        softmax probabilities (..., C), 0 at invalid points."""
        C = len(self.class_ids)
        logits = channels[0] + self._bias.reshape(C, 1, 1, 1)
        for i, sigma3 in enumerate(self._fine):
            # classes on two threads on a big box (ndimage's 1-D passes release the GIL); each adds its own class
            def add(c, i=i, sigma3=sigma3):
                logits[c] += ndimage.gaussian_filter(channels[1 + i, c], sigma3, mode="nearest", truncate=TRUNCATE)

            if channels[0, 0].size > 1 << 20:
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(add, range(C)))
            else:
                for c in range(C):
                    add(c)
            if step is not None:
                step()
        for pooled, coarse in self._wide:
            logits += np.moveaxis(pooled.box(coarse, box), -1, 0)
        if step is not None:
            for _ in range(len(self.scales) - len(self._fine)):  # the wide scales: one summed interpolation
                step()
        probs = softmax_(np.ascontiguousarray(np.moveaxis(logits, 0, -1)))
        probs[~valid] = 0
        return probs

    # ------------------------------------------------------------------ regions
    def segment_region(self, region) -> Segmentation:
        """A box of the grid (three slices); computed on the box plus the halo, then cropped."""
        fm = self.features
        shape = fm.shape
        region = box_index(shape, region)[0]
        outer, sub, flat = box_index(
            shape, [slice(max(s.start - h, 0), min(s.stop + h, n)) for s, n, h in zip(region, shape, self.halo)]
        )
        valid = fm.valid[flat]
        channels = self._channels(fm.vectors[flat], valid).reshape(1 + len(self._fine), -1, *sub)
        valid = valid.reshape(sub)
        probs = self._smoothed(self._probabilities(channels, valid, outer), valid)
        crop = tuple(slice(r.start - o.start, r.stop - o.start) for r, o in zip(region, outer))
        return self._result(np.ascontiguousarray(probs[crop]), valid[crop], region)

    def segment(
        self,
        *,
        batch: int = 1 << 18,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Segmentation:
        """The whole grid: logit channels in batches, then the context and probability smoothing.

        ``progress(done, total)`` counts grid points, the smoothing steps reported as a second pass over
        the grid; ``cancel()`` True stops with SeisfmCancelled.
        """
        fm = self.features
        n, C = fm.grid.size, len(self.class_ids)
        steps = len(self.scales) + (C if any(self.smooth) else 0)
        total = 2 * n if steps else n
        channels = np.empty((1 + len(self._fine), C, n), np.float32)
        flat_channels = channels.reshape(-1, n)

        def one(a):
            if cancel is not None and cancel():
                raise SeisfmCancelled(f"segmentation stopped after {a} of {n} grid points")
            b = min(a + batch, n)
            self._channels(fm.vectors[a:b], fm.valid[a:b], out=flat_channels[:, a:b])
            return b

        # batches on two worker threads: the int8 -> float32 conversion and the product release the GIL
        with ThreadPoolExecutor(2) as pool:
            for b in pool.map(one, range(0, n, batch)):
                if progress is not None:
                    progress(b, total)
        valid = fm.valid.reshape(fm.shape)
        done = [0]

        def step():
            if cancel is not None and cancel():
                raise SeisfmCancelled("segmentation stopped while smoothing")
            done[0] += 1
            if progress is not None:
                progress(n + n * done[0] // steps, total)

        whole = tuple(slice(0, s) for s in fm.shape)
        probs = self._probabilities(channels.reshape(*channels.shape[:2], *fm.shape), valid, whole, step)
        del channels
        probs = self._smoothed(probs, valid, step)
        return self._result(probs, valid, whole)
