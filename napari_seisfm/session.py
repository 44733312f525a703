"""ClickToMapSession: one interpretation at work, headless and evented (no Qt, no napari).

The session owns what the geoscientist does and what follows from it: the feature matrix, the clicks in
survey units (and the grid points they count at), undo, the decision rule, the threshold policy, the
latest map and its matches, segmentation and facies runs, export, save and open. The Click-to-map dock
is a view over it (layers and controls wired to these methods and signals); ``seisfm search``,
``seisfm segment`` and ``seisfm demo`` drive the same object, so the GUI and the CLI cannot disagree.

Threads: :meth:`snapshot` (cheap, any thread) freezes the clicks and settings; :meth:`compute` turns a
snapshot into a :class:`MapResult` (seconds on a big grid: run it in a worker; computes are serialised
by a lock, and the search object is only touched there); :meth:`accept` takes a result back unless the
clicks changed meanwhile (a stale result is dropped, never shown).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from psygnal import Signal

from .errors import SeisfmError
from .interpretation import Interpretation, load_interpretation, save_interpretation, sync_clicks
from .search import (
    DEFAULT_DECISION,
    DEFAULT_SEGMENTER,
    FeatureMatrix,
    Match,
    kmeans_facies,
    make_search,
    make_segmenter,
    support_from_labels,
    threshold_mask,
)
from .search.linear_segmenter import SMOOTH

THRESHOLD_STEP = 0.01  # the default threshold is floored to this step, so a slider of hundredths shows it exactly
THRESHOLD_RANGE = (-2.0, 2.0)
N_MATCHES = 20
NUMPY_KNN_POINTS = 1 << 18  # grids up to 64^3: the whole-grid kNN in numpy beats a cold `import torch` (seconds)


def bodies_above(score: np.ndarray, threshold: float, positives, connected: bool = True):
    """One labelling of ``score >= threshold`` gives the mask (the bodies that hold a positive click, or
    every body) and one match per other body: (bodies, a :class:`~napari_seisfm.search.region.Bodies` over the
    points above only; mask uint8; clicked labels)."""
    from .search.region import Bodies

    bodies = Bodies.above(score, threshold)
    clicked = bodies.of_points(positives)
    return bodies, bodies.mask(clicked if connected else None), clicked


def quantise_threshold(t: float) -> float:
    """``t`` floored to :data:`THRESHOLD_STEP` within :data:`THRESHOLD_RANGE` (never above the default rule)."""
    steps = np.clip(np.floor(t / THRESHOLD_STEP + 1e-9), THRESHOLD_RANGE[0] / THRESHOLD_STEP, THRESHOLD_RANGE[1] / THRESHOLD_STEP)
    return float(steps) * THRESHOLD_STEP


@dataclass(frozen=True)
class Snapshot:
    """The clicks and settings a map is computed from."""

    version: int
    positives: tuple  # grid points
    negatives: tuple
    decision: str
    connected: bool
    threshold: float | None  # None: the decision's default


@dataclass
class MapResult:
    """A map and everything shown with it, for the clicks of ``snapshot``."""

    snapshot: Snapshot
    score: np.ndarray  # float32 on the feature grid, NaN where there is no vector
    matches: list[Match]
    default_threshold: float  # the decision's default for this map, quantised
    threshold: float  # the one the mask was made at
    mask: np.ndarray  # uint8, 1 = selected

    @property
    def display_limits(self) -> tuple[float, float]:
        """Contrast limits that tint only what the default threshold selects (the rest stays plain seismic)."""
        finite = self.score[np.isfinite(self.score)]
        if not finite.size:
            return (0.0, 1.0)
        lo, hi = self.default_threshold, float(finite.max())
        return (lo, hi if hi > lo else lo + 1e-3)


@dataclass
class Preview:
    """The map on one box of the grid (the section on screen), shown while the whole map is computed."""

    snapshot: Snapshot
    region: tuple  # three slices of the feature grid
    score: np.ndarray  # float32, the box's shape
    default_threshold: float


@dataclass
class SegmentationSettings:
    method: str = DEFAULT_SEGMENTER
    k: int = 5
    weighted: bool = False
    smooth: float = SMOOTH
    context: tuple | None = None  # the linear method's context scales (None: its default)

    def options(self) -> dict:
        if self.method == "knn":
            return {"k": self.k, "weighted": self.weighted}
        return {"smooth": self.smooth, **({} if self.context is None else {"context": tuple(self.context)})}


@dataclass
class _Click:
    survey: tuple[float, float, float]
    grid: tuple[int, int, int]
    negative: bool


@dataclass
class ClickToMapSession:
    """See the module docstring. Build with :meth:`open` (a feature store) or directly from a FeatureMatrix."""

    features: FeatureMatrix
    decision: str = DEFAULT_DECISION
    connected: bool = True  # the mask keeps only bodies connected to the positive clicks
    n_matches: int = N_MATCHES
    match_radius: int = 2  # non-maximum suppression of the match list, in grid points
    kernel: str = "auto"
    features_path: str | None = None
    cube_path: str | None = None
    cube_fingerprint: str | None = None
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)

    clicks_changed = Signal()  # the clicks (or the grid points they count at) changed
    map_changed = Signal(object)  # a MapResult was accepted, or None when the map went (no positive click)
    threshold_changed = Signal(float)

    def __post_init__(self):
        self._clicks: list[_Click] = []  # in the order they were made: undo pops the last
        self._threshold: float | None = None  # None: follow the decision's default
        self._version = 0
        self._search = None
        self._lock = threading.Lock()
        self.result: MapResult | None = None

    @classmethod
    def open(cls, path, *, cube=None, fingerprint: str | None = None, **kw) -> ClickToMapSession:
        """A session on a feature store; with ``cube`` or its ``fingerprint``, refuse a store of another cube."""
        fm = FeatureMatrix.open(path, cube=cube, fingerprint=fingerprint)
        if cube is not None:
            kw.setdefault("cube_path", str(cube.path) if cube.path else None)
            fingerprint = cube.geometry.fingerprint()
        return cls(fm, features_path=str(path), cube_fingerprint=fingerprint or fm.fingerprint, **kw)

    def prepared(self) -> ClickToMapSession:
        """This session with its decision's click-independent work done (:meth:`CentroidSearch.prepare`): call
        it where waiting is expected (loading the store, in a worker), so the first click is as quick as the
        next."""
        with self._lock:
            self._synced(self.snapshot()).prepare()
        return self

    # ------------------------------------------------------------------ clicks
    @property
    def positives(self) -> list[tuple[float, float, float]]:
        """Positive clicks in survey units, as clicked (they count at the nearest grid point)."""
        return [c.survey for c in self._clicks if not c.negative]

    @property
    def negatives(self) -> list[tuple[float, float, float]]:
        return [c.survey for c in self._clicks if c.negative]

    @property
    def grid_positives(self) -> list[tuple[int, int, int]]:
        return [c.grid for c in self._clicks if not c.negative]

    @property
    def grid_negatives(self) -> list[tuple[int, int, int]]:
        return [c.grid for c in self._clicks if c.negative]

    def _click(self, point, negative: bool, space: str) -> _Click:
        fm = self.features
        grid = fm.to_grid(point, space)  # outside the volume: SeisfmError
        fm.vector(grid)  # a grid point without an embedding is refused too
        if space == "survey":
            survey = tuple(float(v) for v in point)
        else:
            survey = fm.grid_to_survey(grid) or tuple(float(v) for v in fm.grid.cube_index(np.asarray(grid)))
        return _Click(survey, grid, negative)

    def add_click(self, point, *, negative: bool = False, space: str = "survey") -> tuple[int, int, int]:
        """Add one click; returns the grid point it counts at. Outside the volume: SeisfmError, nothing added."""
        click = self._click(point, negative, space)
        self._clicks.append(click)
        self._changed()
        return click.grid

    def set_clicks(self, positives=(), negatives=(), *, space: str = "survey") -> list[str]:
        """Make the clicks these (a Points layer edited by hand, a file, the CLI). Clicks already there keep
        their place in the undo order, new ones go last; clicks that cannot count (outside the volume, no
        vector) are left out and their reasons returned."""
        wanted, refused = [], []
        for points, negative in ((positives, False), (negatives, True)):
            for p in points:
                try:
                    wanted.append(self._click(p, negative, space))
                except SeisfmError as exc:
                    refused.append(str(exc))
        key = lambda c: (c.survey, c.negative)  # noqa: E731
        want = Counter(key(c) for c in wanted)
        kept = []
        for c in self._clicks:
            if want[key(c)] > 0:
                want[key(c)] -= 1
                kept.append(c)
        have = Counter(key(c) for c in kept)
        added = []
        for c in wanted:
            if have[key(c)] > 0:
                have[key(c)] -= 1
            else:
                added.append(c)
        if kept + added != self._clicks:
            self._clicks = kept + added
            self._changed()
        return refused

    def undo(self) -> bool:
        """Remove the latest click (positive or negative); False when there is none."""
        if not self._clicks:
            return False
        self._clicks.pop()
        self._changed()
        return True

    def clear(self) -> None:
        """Remove every click; the threshold goes back to the decision's default."""
        self._threshold = None
        if self._clicks:
            self._clicks.clear()
            self._changed()

    def _changed(self) -> None:
        self._version += 1
        if not self.grid_positives and self.result is not None:
            self.result = None
            self.map_changed.emit(None)
        self.clicks_changed.emit()

    # ------------------------------------------------------------------ settings
    def set_decision(self, decision: str) -> None:
        """Switch the decision rule (``probe`` / ``centroid``); the threshold follows the new default."""
        from .search import DECISIONS

        if decision not in DECISIONS:
            raise SeisfmError(f"unknown decision {decision!r}; choose from {', '.join(DECISIONS)}")
        if decision != self.decision:
            self.decision = decision
            self._threshold = None
            self._version += 1

    def set_connected(self, connected: bool) -> None:
        self.connected = bool(connected)

    @property
    def threshold_is_auto(self) -> bool:
        return self._threshold is None

    def set_threshold(self, t: float | None) -> None:
        """A threshold chosen by the user; ``None`` goes back to the decision's default (Auto)."""
        if t is not None and not np.isfinite(t):
            raise SeisfmError(f"threshold {t}: must be a finite number")
        self._threshold = None if t is None else float(t)
        self.threshold_changed.emit(self.threshold)

    @property
    def threshold(self) -> float:
        """The threshold in force: the user's, else the latest map's default (0.5 before any map)."""
        if self._threshold is not None:
            return self._threshold
        return self.result.default_threshold if self.result is not None else 0.5

    def mask(self, threshold: float | None = None, connected: bool | None = None) -> np.ndarray | None:
        """The selection of the latest map (uint8), or None without a map."""
        r = self.result
        if r is None:
            return None
        t = self.threshold if threshold is None else float(threshold)
        c = self.connected if connected is None else bool(connected)
        if t == r.threshold and c == r.snapshot.connected:
            return r.mask  # made in the worker: no labelling on the caller's thread
        return threshold_mask(r.score, t, r.snapshot.positives, connected=c).astype(np.uint8)

    # ------------------------------------------------------------------ the map
    def snapshot(self) -> Snapshot:
        return Snapshot(
            self._version, tuple(self.grid_positives), tuple(self.grid_negatives), self.decision, self.connected, self._threshold
        )

    def compute(self, snapshot: Snapshot | None = None) -> MapResult:
        """The map for ``snapshot`` (default: now), its matches and the mask at the threshold in force.

        Clicks are synced incrementally: one new click costs one vector, the store is never re-read. The
        labelling of the bodies above the threshold (the points above it only, region.Bodies) is done here, off the GUI thread."""
        snap = snapshot or self.snapshot()
        if not snap.positives:
            raise SeisfmError("add a positive click first")
        with self._lock:
            search = self._synced(snap)
            score = search.score_map()  # read-only, and a new array for every map: the result keeps it, no copy
            default = quantise_threshold(search.default_threshold(score))
            threshold = default if snap.threshold is None else snap.threshold
            bodies, mask, clicked = bodies_above(score, threshold, snap.positives, snap.connected)
            matches = (
                search.top_matches(self.n_matches, radius=self.match_radius, bodies=bodies, skip_bodies=clicked)
                if self.n_matches
                else []
            )
        return MapResult(snap, score, matches, default, threshold, mask)

    @property
    def kernel_name(self) -> str | None:
        """The dot-product kernel the latest map ran on (``simsimd``, ``numkong``, ``numpy``)."""
        return None if self._search is None else self._search.kernel.name

    def _synced(self, snapshot: Snapshot):
        """The search object for ``snapshot``'s decision, its clicks brought to the snapshot's (call under the lock)."""
        if self._search is None or self._search.decision != snapshot.decision:
            self._search = make_search(self.features, snapshot.decision, kernel=self.kernel)
        sync_clicks(self._search, snapshot.positives, snapshot.negatives)
        return self._search

    def preview(self, snapshot: Snapshot, region) -> Preview:
        """The map of ``snapshot`` on ``region`` only: tens of milliseconds on any grid (the rows of one
        section), so the section on screen follows a click before the whole map (:meth:`compute`) is done."""
        from .search.knn import box_index

        if not snapshot.positives:
            raise SeisfmError("add a positive click first")
        fm = self.features
        region, shape, flat = box_index(fm.shape, region)
        with self._lock:
            search = self._synced(snapshot)
            if hasattr(search, "scores_box"):  # the probe with context: the box plus the halo its scales reach  # noqa: SIM108
                score = search.scores_box(region)
            else:
                score = search.scores_at(flat).reshape(shape)
            default = search.click_threshold()
        return Preview(snapshot, region, score, quantise_threshold(default))

    def is_current(self, result) -> bool:
        return result.snapshot.version == self._version

    def accept(self, result: MapResult) -> bool:
        """Make ``result`` the session's map, unless the clicks or the decision changed since its snapshot."""
        if not self.is_current(result):
            return False
        self.result = result
        self.map_changed.emit(result)
        return True

    def update(self) -> MapResult | None:
        """Compute and accept in one call (the CLI, scripts, tests); None without a positive click."""
        if not self.grid_positives:
            return None
        result = self.compute()
        self.accept(result)
        return result

    # ------------------------------------------------------------------ segmentation and facies
    def support(self, labels: np.ndarray, name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
        """Painted labels (feature grid or cube grid) -> (grid points, classes); fewer than two classes is an error."""
        points, classes = support_from_labels(
            np.asarray(labels), self.features.grid, cube_shape=self.features.cube_shape(), name=name
        )
        n = len(np.unique(classes[classes > 0]))
        if n < 2:
            raise SeisfmError(f"label at least two classes ({name} has {n})")
        return points, classes

    def segment(self, points, classes, *, region=None, progress=None, cancel=None):
        """Generator: the ``region`` (the visible slice) first when given, then returns the whole grid's
        :class:`~napari_seisfm.search.Segmentation` (``StopIteration.value``; use :func:`run_to_end`).

        kNN's slice (and a small grid) runs on the numpy backend: torch's kernels are faster on a big grid,
        but importing torch takes seconds on a cold start, and nothing would be on screen meanwhile."""
        s = self.segmentation
        options = s.options()
        quick = {**options, "backend": "numpy"} if s.method == "knn" else options
        seg = make_segmenter(self.features, points, classes, s.method, **quick)
        if region is not None:
            yield seg.segment_region(region)
        if s.method == "knn" and self.features.grid.size > NUMPY_KNN_POINTS:
            seg = make_segmenter(self.features, points, classes, s.method, **options)
        return seg.segment(progress=progress, cancel=cancel)

    def facies(self, k: int, *, progress=None, cancel=None):
        """Unsupervised facies: k-means of every grid point's vector into ``k`` classes."""
        return kmeans_facies(self.features, k, progress=progress, cancel=cancel)

    # ------------------------------------------------------------------ export, save, open
    def export(self, path, data: np.ndarray, cube, *, labels: bool = False, progress=None, cancel=None) -> Path:
        """Write a map or classes on the feature grid to the cube grid (SEG-Y with the cube's headers, .sgz,
        .npy, .zarr). ``cube`` is a Cube or its path (opened and closed here)."""
        from .export import export_volume
        from .io import open_cube

        g = self.features.grid
        if isinstance(cube, (str, Path)):
            with open_cube(cube) as c:
                return export_volume(
                    path, data, c, stride=g.stride, origin=g.origin, labels=labels, progress=progress, cancel=cancel
                )
        return export_volume(path, data, cube, stride=g.stride, origin=g.origin, labels=labels, progress=progress, cancel=cancel)

    def interpretation(self, *, threshold: float | None = None, **labels) -> Interpretation:
        """What the geoscientist did, for :func:`save`: clicks in survey units, parameters, and the painted
        labels when given (``labels``, ``labels_scale``, ``labels_translate``, ``labels_name``)."""
        s = self.segmentation
        return Interpretation(
            positives=self.positives,
            negatives=self.negatives,
            params={
                "k": s.k,
                "weighted": s.weighted,
                "method": s.method,
                "smooth": s.smooth,
                "threshold": self.threshold if threshold is None else threshold,
                "decision": self.decision,
                "connected": self.connected,
            },
            features_path=self.features_path,
            cube_path=self.cube_path,
            cube_fingerprint=self.cube_fingerprint,
            **labels,
        )

    def save(self, path, **labels) -> Path:
        return save_interpretation(path, self.interpretation(**labels))

    def load(self, path) -> Interpretation:
        """Restore clicks and parameters of a saved interpretation (refused when made on another cube);
        the labels come back in the returned Interpretation for the caller to place. Its clicks are those that
        count; ``refused`` gives the reason for each click of the file that was left out."""
        interp = load_interpretation(path, fingerprint=self.cube_fingerprint)
        interp.refused = self.apply(interp)
        # what is reported is what counts: clicks outside the volume (or without a vector) were left out
        interp.positives, interp.negatives = self.positives, self.negatives
        return interp

    def apply(self, interp: Interpretation) -> list[str]:
        p = interp.params
        # files from before the probe and the linear method were the centroid and kNN
        smooth = SMOOTH if p.get("smooth") is None else p["smooth"]  # one number or three (load_interpretation checked them)
        smooth = tuple(float(v) for v in smooth) if isinstance(smooth, (list, tuple)) else float(smooth)
        self.segmentation = SegmentationSettings(
            method=p.get("method") or "knn", k=int(p.get("k") or 5), weighted=bool(p.get("weighted")), smooth=smooth
        )
        self.set_decision(p.get("decision") or "centroid")
        self.connected = bool(p.get("connected", False))
        refused = self.set_clicks(interp.positives, interp.negatives)
        self.set_threshold(None if p.get("threshold") is None else float(p["threshold"]))
        return refused


def run_to_end(steps):
    """Drive a generator such as :meth:`ClickToMapSession.segment` to its return value."""
    try:
        while True:
            next(steps)
    except StopIteration as stop:
        return stop.value
