"""Click to map as it was before issue 24, frozen: the map (SimSIMD's threaded cdist, then a scale pass and the
probe's sigmoid pass), the whole-grid labelling and the argpartition top matches. tests/test_click_speed.py
checks the new code gives the same results; benchmarks/bench_click.py times both in the same run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage
from scipy.special import expit

from napari_seisfm.search.centroid import Match
from napari_seisfm.search.kernels import quantise_query

_POOL = ThreadPoolExecutor(2)


def dots(fm, query, threads: int) -> np.ndarray:
    """``FeatureMatrix.dots`` on the SimSIMD kernel as it was: one threaded cdist into ``out``, then ``out *= factor``."""
    import simsimd

    if fm.kernel("auto", threads).name != "simsimd":  # float32 stores: numpy's matmul, unchanged by issue 24
        return fm.dots(query, threads=threads)
    query = np.asarray(query, np.float32).ravel()
    out = np.empty(len(fm.vectors), np.float32)
    if fm.dtype == "int8":
        q, scale = quantise_query(query)
        factor = 1.0 / (scale * fm.quant_scale)
    else:
        q, factor = query.astype(fm.dtype), 1.0
    simsimd.cdist(fm.vectors, q[None], metric="dot", threads=threads, out=out.reshape(-1, 1))
    if factor != 1.0:
        out *= np.float32(factor)
    out[fm.invalid_index] = np.nan
    return out


def probe_scores(probe, threads: int) -> np.ndarray:
    """``ProbeSearch.scores`` as it was: the dots, then ``expit(s + offset)`` in place, one part per thread."""
    q = probe.query()
    s = dots(probe.features, q, threads)
    offset = np.float32(probe._offset)

    def part(sl):
        x = s[sl]
        x += offset
        expit(x, out=x)

    bounds = np.linspace(0, len(s), threads + 1).astype(int)
    parts = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if len(parts) > 1 and len(s) > 1 << 20:
        list(_POOL.map(part, parts))
    else:
        part(slice(None))
    return s


def bodies_above(score, threshold, positives, connected=True):
    labels, n = ndimage.label(score >= threshold)
    clicked = {int(labels[tuple(p)]) for p in positives} - {0}
    keep = np.zeros(n + 1, np.uint8)
    keep[list(clicked) if connected else slice(1, None)] = 1
    return labels, keep[labels], clicked


def connected_to(mask, seeds):
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


def top_matches(search, s, n=20, *, radius=2, exclude_clicks=True, bodies=None, skip_bodies=()):
    """``CentroidSearch.top_matches`` as it was, on the flat scores ``s``."""
    fm = search.features
    n_finite = len(s) - len(fm.invalid_index)
    key = s
    if len(fm.invalid_index):
        key = s.copy()
        key[fm.invalid_index] = -np.inf
    blocked = [np.asarray(p) for p in search.positives] if exclude_clicks else []
    kept, flats = [], []
    used, skip = set(), {int(b) for b in skip_bodies}
    m = min(len(s), max(4 * n * (2 * radius + 1) ** 2, 1024))
    taken = 0
    while len(kept) < n and taken < n_finite:
        cand = np.argpartition(key, len(s) - m)[len(s) - m :] if m < len(s) else np.arange(len(s))
        cand = cand[np.argsort(-key[cand], kind="stable")][taken:]
        cand = cand[np.isfinite(key[cand])]
        coords = np.stack(np.unravel_index(cand, fm.shape), axis=1)
        for f, c in zip(cand, coords):
            body = int(bodies[tuple(c)]) if bodies is not None else 0
            if body and (body in used or body in skip):
                continue
            if radius > 0 and any(np.abs(c - b).max() <= radius for b in kept + blocked):
                continue
            if body:
                used.add(body)
            kept.append(c)
            flats.append(int(f))
            if len(kept) == n:
                break
        taken += len(cand)
        if m >= len(s):
            break
        m = min(len(s), m * 4)
    out = []
    for rank, (c, f) in enumerate(zip(kept, flats), 1):
        ci = tuple(int(x) for x in fm.grid.cube_index(c))
        out.append(Match(rank, tuple(int(x) for x in c), ci, float(s[f]), fm.grid_to_survey(c)))
    return out


def compute(search, positives, threshold, n_matches=20, radius=2, connected=True, threads=2):
    """The session's ``compute`` as it was: map, copy, whole-grid labels, mask, argpartition matches."""
    from napari_seisfm.search import ProbeSearch

    if isinstance(search, ProbeSearch):  # the plain probe as it was; the context probe (issue 22) has no "before"
        s = search.scores().copy() if search.context else probe_scores(search, threads)
    else:
        s = dots(search.features, search.query(), threads)
    score = s.reshape(search.features.shape).copy()
    bodies, mask, clicked = bodies_above(score, threshold, positives, connected)
    matches = top_matches(search, s, n_matches, radius=radius, bodies=bodies, skip_bodies=clicked)
    return score, mask, matches
