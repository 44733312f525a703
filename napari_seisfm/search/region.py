"""Spatial coherence of a thresholded map: keep the bodies the user clicked on.

A threshold marks everything that scores like the target anywhere in the cube; an interpreter who
clicked on one flat spot wants that flat spot, with its edges, not every bright patch of the survey.
The connected regions of the mask (face-connected on the feature grid) that hold a positive click are
what the click meant. Measured on the simulated-interpreter protocol (docs/quality.md) this is what
turns a good probe map into a mask that needs few corrections.

:class:`Bodies` labels the regions over the points above the threshold only (usually a few per cent of
the grid): their flat indices, one pass over the map, and the face-neighbour pairs among them joined by
``scipy.sparse.csgraph``; a grid mostly above the threshold is labelled by ``scipy.ndimage.label`` instead
(cheaper there). Either way the regions are the same sets of points as ``ndimage.label`` finds (only the
label numbers differ); tests/test_click_speed.py checks that.
"""

from __future__ import annotations

import numpy as np

from ..errors import SeisfmError

DENSE = 1 / 16  # above this fraction of the grid, ndimage.label over the whole grid is cheaper (measured, docs/search.md)


class Bodies:
    """The connected regions (6-neighbourhood) of a boolean grid, labelled over its True points only.

    ``index``: sorted flat indices of the True points; ``labels``: their region labels (1..``n``, int32).
    """

    def __init__(self, shape, index: np.ndarray, labels: np.ndarray, n: int):
        self.shape = tuple(int(s) for s in shape)
        self.index = index
        self.labels = labels
        self.n = int(n)

    @classmethod
    def above(cls, score_map: np.ndarray, threshold: float) -> Bodies:
        """The regions of ``score >= threshold`` (no-value points never)."""
        s = np.asarray(score_map)
        return cls.of_index(s.shape, np.flatnonzero(s.reshape(-1) >= threshold))

    @classmethod
    def of_mask(cls, mask: np.ndarray) -> Bodies:
        mask = np.asarray(mask, bool)
        return cls.of_index(mask.shape, np.flatnonzero(mask.reshape(-1)))

    @classmethod
    def of_index(cls, shape, index: np.ndarray) -> Bodies:
        """From the sorted flat indices of the True points of a grid of ``shape``."""
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        m = len(index)
        if m == 0:
            return cls(shape, index, np.zeros(0, np.int32), 0)
        if m > DENSE * size:
            from scipy import ndimage

            grid = np.zeros(size, bool)
            grid[index] = True
            labels, n = ndimage.label(grid.reshape(shape))
            return cls(shape, index, labels.reshape(-1)[index].astype(np.int32, copy=False), n)
        return cls(shape, index, *_sparse_components(shape, index))

    # ------------------------------------------------------------------ lookups
    def at(self, flat) -> np.ndarray:
        """Region label of each flat grid index (0: not in any region)."""
        flat = np.asarray(flat, np.int64)
        if not len(self.index):
            return np.zeros(flat.shape, np.int32)
        pos = np.searchsorted(self.index, flat)
        pos = np.minimum(pos, len(self.index) - 1)
        return np.where(self.index[pos] == flat, self.labels[pos], 0).astype(np.int32)

    def of_points(self, points) -> set:
        """The labels of the regions holding any of ``points`` (grid indices; points outside the grid count for none)."""
        pts = np.asarray(points, int).reshape(-1, len(self.shape))
        inside = (pts >= 0).all(axis=1) & (pts < np.asarray(self.shape)).all(axis=1)
        if not inside.any():
            return set()
        flat = np.ravel_multi_index(tuple(pts[inside].T), self.shape)
        return {int(b) for b in self.at(flat)} - {0}

    def mask(self, keep=None, dtype=np.uint8) -> np.ndarray:
        """The grid with the points of the regions in ``keep`` (every region when None) set to 1."""
        out = np.zeros(int(np.prod(self.shape)), dtype)
        if keep is None:
            out[self.index] = 1
        elif len(keep):
            wanted = np.zeros(self.n + 1, bool)
            wanted[np.fromiter(keep, np.int64)] = True
            out[self.index[wanted[self.labels]]] = 1
        return out.reshape(self.shape)


def _sparse_components(shape, index: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of the points ``index`` (sorted flat indices) under face adjacency: the neighbour
    pairs along each axis are found by binary search among the points, then joined by ``csgraph``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = len(index)
    src, dst = [], []
    step = 1
    for axis in range(len(shape) - 1, -1, -1):  # the last axis first: its neighbours are adjacent in ``index``
        n_axis = shape[axis]
        if n_axis > 1:
            if axis == len(shape) - 1:
                k = np.flatnonzero(np.diff(index) == 1)  # consecutive points; not across a row end
                k = k[(index[k] % n_axis) != n_axis - 1]
                src.append(k)
                dst.append(k + 1)
            else:
                interior = (index // step) % n_axis != n_axis - 1
                k = np.flatnonzero(interior)
                target = index[k] + step
                pos = np.searchsorted(index, target)
                hit = pos < m
                hit[hit] = index[pos[hit]] == target[hit]
                src.append(k[hit])
                dst.append(pos[hit])
        step *= n_axis
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(m, m)).tocsr()
    n, labels = connected_components(graph, directed=False)
    return (labels + 1).astype(np.int32), n


def connected_to(mask: np.ndarray, seeds) -> np.ndarray:
    """The parts of boolean ``mask`` connected (6-neighbourhood in 3-D) to any of the ``seeds`` (grid indices)."""
    mask = np.asarray(mask, bool)
    bodies = Bodies.of_mask(mask)
    return bodies.mask(bodies.of_points(seeds), dtype=bool)


def threshold_mask(score_map: np.ndarray, threshold: float, positives, *, connected: bool = True) -> np.ndarray:
    """What the product shows as "similarity > threshold": ``score >= threshold`` (no-value points never),
    and with ``connected`` only the bodies that hold a positive click. One definition for the dock, the
    CLI's ``--mask`` and the bench."""
    bodies = Bodies.above(score_map, threshold)
    return bodies.mask(bodies.of_points(positives) if connected else None, dtype=bool)


def auto_threshold(score_map: np.ndarray, positives) -> float:
    """Default threshold: the lowest score among the positive clicks (grid indices).

    "Mark everything at least as similar as the least similar example" needs no ground truth and keeps
    every clicked point inside the mask; the user refines it with the slider.
    """
    vals = [float(score_map[tuple(int(v) for v in p)]) for p in positives]
    vals = [v for v in vals if np.isfinite(v)]
    if not vals:
        raise SeisfmError("add a positive click first")
    return min(vals)


def bodies_per_store(sid: np.ndarray, grid: np.ndarray, order: np.ndarray, radius: int, steps: dict):
    """The survey library's one entry per body (the in-cube match list's rule, across stores). Group hits (best
    first) into bodies per store: hits within ``radius`` indexed grid points of each other
    (Chebyshev, in units of the store's index step) are chained into one. Returns (``order`` at each body's
    best hit, the number of hits per body), bodies best first."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    best, size = [], []
    for i in np.unique(sid):
        at = np.flatnonzero(sid == i)  # best first: usearch returns hits by distance
        if len(at) == 1:
            best.append(at)
            size.append([1])
            continue
        pts = grid[at] / steps.get(int(i), np.ones(3))
        pairs = cKDTree(pts).query_pairs(r=radius + 1e-6, p=np.inf, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(at), len(at)))
        _, labels = connected_components(graph, directed=False)
        _, first, counts = np.unique(labels, return_index=True, return_counts=True)
        best.append(at[first])
        size.append(counts)
    if not best:
        return order[:0], np.zeros(0, np.int64)
    best, size = np.concatenate(best), np.concatenate(size)
    rank = np.argsort(best, kind="stable")  # positions in the best-first hit list = score order
    return order[best[rank]], size[rank].astype(np.int64)
