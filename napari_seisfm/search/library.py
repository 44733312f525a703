"""The library: the vectors of many feature stores in one usearch index, for "where else does this occur?".

One folder (default ``seisfm-library`` beside the first store added) holds:

- ``vectors.usearch``: a usearch HNSW index, int8 scalars, cosine metric, over the stored vectors (int8 stores
  as stored; float stores quantised to ``round(v * 127)``), optionally every ``step``-th grid point per axis;
  opened memory-mapped for search (``Index.restore(path, view=True)``), so a 100 M-vector library is not read
  into RAM;
- ``library.json``: the stores (path, model, grid, cube geometry summary, index step, vector count) and the
  model and dimension every store must share.

A key is ``store_id << 40 | flat grid index`` on the store's own feature grid, so a match maps back to
(store, grid index, cube index, inline/crossline/time) without reading the store.

A search lists one entry per body, as the in-cube match list does: the nearest vectors are grouped per cube
into bodies (hits within ``radius`` indexed grid points of each other, chained) and each body is listed once,
at its best hit. Hits in a cube's seabed band (the water column, the first strong reflector and one grid step
below it, picked per trace from the cube's amplitudes when the store is added; ``seabed-<id>.npy``) are left
out unless asked for, or unless a clicked point lies in its own cube's band. Each store's cube path is kept
absolute, so a match's cube opens from any working directory. Adding a store already in
the library (same resolved path) is a no-op, unless it was re-embedded there with other settings (model, grid,
cube): then its old vectors are replaced; a store of another model or dimension is refused. Search needs
every listed store on disk (a match must be openable), and says which one is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import SeisfmError
from ..io.output import atomic_output
from ..store.grid import GridSpec
from ..store.lock import StoreLock
from ..store.volume import FeatureVolume
from .region import bodies_per_store
from .seabed import cube_path, entry_cube, remove_bands, write_band

FORMAT = "seisfm-library"
VERSION = 1
DEFAULT_NAME = "seisfm-library"
INDEX_FILE = "vectors.usearch"
MANIFEST_FILE = "library.json"
KEY_BITS = 40  # flat grid index bits; the store id sits above them
BATCH = 1 << 16  # vectors per usearch add
# Candidates per wanted entry in a grouped or filtered search, and the most candidates one search looks at
# (the pool grows 4x at a time while one body or the seabed band takes most of it).
SPREAD = 16
MAX_CANDIDATES = 1 << 14
DEFAULT_EXPANSION = 512  # search beam width (usearch expansion_search): recall@100 0.995 at 1 M vectors (bench_library.py)
# HNSW edges per node of a new library. usearch's default (16) levelled off near recall@100 0.98 at 3 M vectors
# (0.939 / 0.957 at the default beam, two builds); 32 gave 0.992 at 3.95 ms, for 60 % more index bytes
# (bench_library.py --sizes 3000000 --connectivity 32). An existing library keeps the connectivity it was built with.
CONNECTIVITY = 32


@dataclass
class LibraryMatch:
    """One hit: where it is in which store, and its cosine similarity to the query."""

    rank: int
    store: str
    grid_index: tuple[int, int, int]
    cube_index: tuple[int, int, int]
    survey: tuple[float, float, float] | None  # inline, crossline, time/depth; None without a geometry
    score: float
    cube: str | None = None  # the store's cube, absolute (None: the store names no cube file)
    hits: int = 1  # candidate hits grouped into this body (1 in a raw search)

    def as_dict(self) -> dict:
        return asdict(self)


def default_library(store) -> Path:
    """Where a library of ``store`` lives unless told: ``seisfm-library`` in the store's folder."""
    return Path(store).resolve().parent / DEFAULT_NAME


def _survey(geometry: dict, cube_index: np.ndarray) -> np.ndarray | None:
    """Survey coordinates of cube indices ``(m, 3)`` from a geometry summary (first, last, step per axis)."""
    try:
        axes = [tuple(float(v) for v in geometry[key]) for key in ("ilines", "xlines", "samples")]
    except (KeyError, TypeError, ValueError):
        return None
    first = np.array([a[0] for a in axes])
    step = np.array([a[2] if a[2] != 0 else 1.0 for a in axes])
    return first + step * np.asarray(cube_index, float)


class Library:
    """The library folder: manifest plus usearch index. :meth:`open` for search, :func:`add_stores` to grow it."""

    def __init__(self, path, manifest: dict, index=None):
        self.path = Path(path)
        self.manifest = manifest
        self._index = index
        self._bands = None
        self.last: dict = {}

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, path, *, view: bool = True) -> Library:
        """A library folder; ``view``: memory-map the index (search) instead of loading it (adding)."""
        path = Path(path)
        man = path / MANIFEST_FILE
        if not man.is_file():
            raise SeisfmError(
                f"{path}: no survey library here (no {MANIFEST_FILE}); build one with `seisfm library add STORE...`"
            )
        try:
            manifest = json.loads(man.read_text())
        except (OSError, ValueError) as exc:
            raise SeisfmError(f"{man}: unreadable library manifest ({exc.__class__.__name__})") from None
        if manifest.get("format") != FORMAT:
            raise SeisfmError(f"{man}: not a napari-seisfm survey library")
        lib = cls(path, manifest)
        lib._index = lib._restore(view)
        return lib

    def _restore(self, view: bool):
        from usearch.index import Index

        f = self.path / INDEX_FILE
        if not self.manifest["stores"]:
            return None
        if not f.is_file():
            raise SeisfmError(f"{self.path}: the index {INDEX_FILE} is missing; delete the folder and add the stores again")
        try:
            index = Index.restore(str(f), view=view)
        except Exception as exc:  # usearch raises RuntimeError/ValueError for damaged files  # noqa: BLE001
            raise SeisfmError(f"{f}: damaged usearch index ({exc}); delete {self.path} and add the stores again") from None
        if index is None or len(index) != self.size:
            raise SeisfmError(
                f"{f}: the index holds {0 if index is None else len(index)} vectors but {MANIFEST_FILE} "
                f"lists {self.size} (an interrupted add?); delete {self.path} and add the stores again"
            )
        return index

    # ------------------------------------------------------------------ what is in it
    @property
    def stores(self) -> list[dict]:
        return self.manifest["stores"]

    @property
    def size(self) -> int:
        return sum(int(s["vectors"]) for s in self.stores)

    @property
    def model(self) -> str | None:
        return self.manifest.get("model")

    @property
    def dim(self) -> int | None:
        return self.manifest.get("dim")

    def info(self) -> dict:
        """What ``seisfm library info`` prints: model, size, index file, and each store with whether it is on disk."""
        f = self.path / INDEX_FILE
        return {
            "library": str(self.path),
            "model": self.model,
            "dim": self.dim,
            "vectors": self.size,
            "index_bytes": f.stat().st_size if f.is_file() else 0,
            "metric": "cos",
            "scalar": "i8",
            "stores": [
                {
                    "id": s["id"],
                    "path": s["path"],
                    "vectors": s["vectors"],
                    "grid": s["grid_shape"],
                    "index_step": s["step"],
                    "on_disk": Path(s["path"]).exists(),
                    "cube": entry_cube(s),
                    "seabed": (s.get("seabed") or {}).get("note", "no seabed band (added before bands were picked)"),
                }
                for s in self.stores
            ],
        }

    def check_compatible(self, model: str, dim: int, what) -> None:
        if self.model is not None and (model != self.model or int(dim) != int(self.dim)):
            raise SeisfmError(
                f"{what}: model {model} ({dim}-d) does not match the library {self.path} "
                f"(model {self.model}, {self.dim}-d); a library holds one model"
            )

    def check_stores_on_disk(self) -> None:
        missing = [s["path"] for s in self.stores if not Path(s["path"]).exists()]
        if missing:
            raise SeisfmError(
                f"{self.path}: store {missing[0]} listed in the library is missing from disk "
                f"({len(missing)} missing); put it back, or take it out with `seisfm library remove`"
            )

    # ------------------------------------------------------------------ search
    def search(
        self,
        query: np.ndarray,
        top: int = 20,
        *,
        radius: int = 1,
        seabed: bool = False,
        expansion: int = DEFAULT_EXPANSION,
        threads: int = 0,
    ) -> list[LibraryMatch]:
        """The ``top`` places most similar (cosine) to one float query, over every store, best first.

        ``radius`` > 0: one entry per body, the hits of one store within ``radius`` indexed grid points of each
        other (per axis, chained) being one body, listed at its best hit with ``hits`` counting its members;
        with ``radius=1`` these are the connected bodies of the library-wide map thresholded at the weakest
        candidate's score. The candidates are the nearest ``SPREAD * top`` vectors, 4x more at a time while that
        gives more entries (up to ``MAX_CANDIDATES``), so a list can hold fewer than ``top`` entries when the
        near vectors form fewer bodies. ``radius=0``: the raw nearest vectors. ``seabed``: keep hits in the stores' seabed
        bands (left out by default). ``self.last`` says what the search looked at and left out."""
        if top < 1:
            raise SeisfmError(f"--top must be at least 1, got {top}")
        if self._index is None:
            raise SeisfmError(f"{self.path}: the library is empty; add stores with `seisfm library add`")
        q = np.asarray(query, np.float32).reshape(-1)
        if len(q) != self.dim:
            raise SeisfmError(f"query has {len(q)} dimensions, the library {self.path} {self.dim}")
        peak = float(np.max(np.abs(q)))
        if not np.isfinite(peak) or peak == 0:
            raise SeisfmError("the query vector is zero or not finite")
        q8 = np.clip(np.rint(q * (127.0 / peak)), -127, 127).astype(np.int8)  # cosine: the scale does not matter
        bands = {} if seabed else {sid: b for sid, b in self.seabed_bands().items() if b is not None}
        plain = radius <= 0 and not bands
        limit = min(self.size, max(MAX_CANDIDATES, int(top)))
        want = min(int(top) if plain else int(top) * SPREAD, limit)
        best = None
        while True:  # a bigger pool while it gives more entries: the band took candidates, or one body did
            self._index.expansion_search = max(int(expansion), want)
            found = self._index.search(q8, want, threads=threads)
            keys = np.asarray(found.keys, np.uint64).reshape(-1)
            dist = np.asarray(found.distances, np.float32).reshape(-1)
            ok = keys != np.iinfo(np.uint64).max  # usearch pads missing results
            sid, grid = self._split(keys[ok])
            scores = 1.0 - dist[ok]
            inside = self._in_band(sid, grid, bands)
            keep = np.flatnonzero(~inside)
            if radius > 0:
                keep, hits = bodies_per_store(sid[keep], grid[keep], keep, radius, self._steps())
            else:
                hits = np.ones(len(keep), np.int64)
            if best is not None and len(keep) <= len(best[3]):
                break  # the lower cut-off merged bodies faster than it found new ones: the smaller pool stands
            best = (sid, grid, scores, keep, hits, inside)
            if len(keep) >= top or want >= limit or plain:
                break
            want = min(want * 4, limit)
        sid, grid, scores, keep, hits, inside = best
        self.last = {
            "candidates": int(len(sid)),
            "seabed_left_out": int(inside.sum()),
            "entries": int(min(len(keep), top)),
            "seabed_bands": len(bands),
        }
        keep, hits = keep[:top], hits[:top]
        return self._matches(sid[keep], grid[keep], scores[keep], hits)

    def _split(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keys -> (store ids, grid indices ``(n, 3)`` on each store's grid)."""
        keys = np.asarray(keys, np.uint64)
        sid = (keys >> np.uint64(KEY_BITS)).astype(np.int64)
        flat = (keys & np.uint64((1 << KEY_BITS) - 1)).astype(np.int64)
        grid = np.zeros((len(keys), 3), np.int64)
        by_id = {int(e["id"]): e for e in self.stores}
        for i in np.unique(sid):
            at = sid == i
            grid[at] = np.stack(np.unravel_index(flat[at], tuple(by_id[int(i)]["grid_shape"])), -1)
        return sid, grid

    def _steps(self) -> dict:
        return {int(e["id"]): np.asarray(e.get("step", (1, 1, 1)), np.int64) for e in self.stores}

    @staticmethod
    def _in_band(sid: np.ndarray, grid: np.ndarray, bands: dict) -> np.ndarray:
        inside = np.zeros(len(sid), bool)
        for i, band in bands.items():
            at = np.flatnonzero(sid == i)
            if len(at):
                g = grid[at]
                inside[at] = g[:, 2] < band[g[:, 0], g[:, 1]]
        return inside

    def decode(self, keys: np.ndarray, scores: np.ndarray) -> list[LibraryMatch]:
        """Keys -> matches with store, grid, cube and survey coordinates (from the manifest alone)."""
        sid, grid = self._split(keys)
        return self._matches(sid, grid, np.asarray(scores, np.float32), np.ones(len(sid), np.int64))

    def _matches(self, sid, grid, scores, hits) -> list[LibraryMatch]:
        by_id = {int(s["id"]): s for s in self.stores}
        cubes = {}
        out = []
        for rank, (i, g, s, n) in enumerate(zip(sid, grid, scores, hits), 1):
            st = by_id[int(i)]
            if int(i) not in cubes:
                cubes[int(i)] = entry_cube(st)
            c = GridSpec(tuple(st["grid_shape"]), tuple(st["stride"]), tuple(st["origin"])).cube_index(g)
            sv = _survey(st["geometry"], c[None])
            out.append(
                LibraryMatch(
                    rank,
                    st["path"],
                    tuple(int(x) for x in g),
                    tuple(int(x) for x in c),
                    None if sv is None else tuple(float(x) for x in sv[0]),
                    float(s),
                    cubes[int(i)],
                    int(n),
                )
            )
        return out

    # ------------------------------------------------------------------ seabed bands
    def seabed_bands(self) -> dict:
        """Per store id: its seabed band (grid rows from the top left out, per (inline, crossline) grid column),
        or None where none was picked (its cube was not on disk when it was added)."""
        if self._bands is None:
            self._bands = {}
            for e in self.stores:
                info = e.get("seabed") or {}
                f = self.path / info["file"] if info.get("file") else None
                try:
                    self._bands[int(e["id"])] = np.load(f) if f is not None else None
                except (OSError, ValueError):
                    raise SeisfmError(
                        f"{f}: unreadable seabed band of {e['path']}; add the store again (`seisfm library remove`, then `add`)"
                    ) from None
        return self._bands

    def in_seabed_band(self, store, grid_index) -> bool:
        """Whether a grid point of ``store`` (a path) lies in that store's seabed band (False when the store
        is not in the library or has no band)."""
        key = str(Path(store).resolve())
        for e in self.stores:
            if str(Path(e["path"]).resolve()) == key:
                band = self.seabed_bands().get(int(e["id"]))
                g = tuple(int(v) for v in grid_index)
                return band is not None and g[2] < int(band[g[0], g[1]])
        return False


# ---------------------------------------------------------------------- building
def _step(step) -> tuple[int, int, int]:
    t = (int(step),) * 3 if np.isscalar(step) else tuple(int(s) for s in step)
    if len(t) != 3 or min(t) < 1:
        raise SeisfmError(f"index step must be one positive integer or three, got {step!r}")
    return t


def _store_vectors(fv: FeatureVolume, step):
    """(keys without the store id, int8 vectors) of the valid grid points on every ``step``-th index, per chunk."""
    for _, sl, v, ok, _, _ in fv.scan():
        if v is None or ok is None:
            continue
        axes = [np.arange(s.start, s.stop) for s in sl]
        take = [np.flatnonzero(a % st == 0) for a, st in zip(axes, step)]
        v = v[np.ix_(*take)]
        ok = ok[np.ix_(*take)]
        gi = np.stack(np.meshgrid(*(a[t] for a, t in zip(axes, take)), indexing="ij"), -1)[ok]
        if not len(gi):
            continue
        v = v[ok]
        if v.dtype != np.int8:  # float stores: unit vectors to the int8 scale of the index
            v = np.clip(np.rint(np.asarray(v, np.float32) * 127), -127, 127).astype(np.int8)
        yield np.ravel_multi_index(tuple(gi.T), fv.grid.shape).astype(np.uint64), np.ascontiguousarray(v)


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def add_stores(
    library, stores, *, step=1, threads: int = 0, progress: Callable[[str, int, int], None] | None = None
) -> list[tuple[str, int]]:
    """Add feature stores to the library folder (created if new): ``[(store, vectors added)]``; a store already
    in it adds 0. Every store is checked (complete, same model and dimension) before any vector is added."""
    from usearch.index import Index

    library = Path(library)
    step = _step(step)
    volumes = [FeatureVolume.open(s) for s in stores]
    with StoreLock(library):
        if (library / MANIFEST_FILE).is_file():
            lib = Library.open(library, view=False)
        else:
            if library.exists() and any(library.iterdir()):
                raise SeisfmError(f"{library}: folder exists and is not a survey library; choose another --library")
            lib = Library(
                library,
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "model": None,
                    "dim": None,
                    "metric": "cos",
                    "scalar": "i8",
                    "next_id": 0,
                    "stores": [],
                },
            )
        known = {str(Path(s["path"]).resolve()): s for s in lib.stores}
        todo, report, seen, stale = [], [], set(), []
        for fv in volumes:
            key = str(fv.path.resolve())
            if key in known and _signature(known[key]) != _signature(_entry(fv)):  # re-embedded at the same path
                stale.append(known.pop(key))
            if key in known or key in seen:
                report.append((str(fv.path), 0))
                continue
            seen.add(key)
            todo.append(fv)
        backfill = [
            (known[str(fv.path.resolve())], fv)
            for fv in volumes
            if str(fv.path.resolve()) in known and not (known[str(fv.path.resolve())].get("seabed") or {}).get("file")
        ]
        model, dim = (lib.model, lib.dim) if len(stale) < len(lib.stores) else (None, None)
        for fv in todo:
            if model is not None and (fv.model != model or fv.dim != dim):
                raise SeisfmError(
                    f"{fv.path}: model {fv.model} ({fv.dim}-d) does not match the library {library} "
                    f"(model {model}, {dim}-d); a library holds one model"
                )
            model, dim = fv.model, fv.dim
        man = lib.manifest
        if backfill:  # an older entry, or one whose cube was away when it was added: pick its band now
            for entry, fv in {id(e): (e, f) for e, f in backfill}.values():
                entry.setdefault("cube", cube_path(fv.path, fv.cube_summary.get("source")))
                entry["seabed"] = write_band(library, int(entry["id"]), fv, entry_cube(entry))
            if not todo:
                _write_json_atomic(library / MANIFEST_FILE, man)
        if not todo:
            return report
        if stale:  # its old vectors out first: their grid positions no longer mean anything
            _drop(lib._index, [e["id"] for e in stale])
            remove_bands(library, stale)
            man["stores"] = [e for e in man["stores"] if e not in stale]
            if not man["stores"]:
                lib._index = None
        index = lib._index if lib._index is not None else Index(ndim=dim, metric="cos", dtype="i8", connectivity=CONNECTIVITY)
        library.mkdir(parents=True, exist_ok=True)
        man["model"], man["dim"] = model, dim
        for fv in todo:
            sid = int(man["next_id"])
            high = np.uint64(sid) << np.uint64(KEY_BITS)
            n = 0
            total = fv.grid.size
            for keys, vecs in _store_vectors(fv, step):
                for a in range(0, len(keys), BATCH):
                    index.add(keys[a : a + BATCH] | high, vecs[a : a + BATCH], threads=threads)
                n += len(keys)
                if progress is not None:
                    progress(str(fv.path), n, total)
            entry = {"id": sid, **_entry(fv), "step": list(step), "vectors": n}
            entry["seabed"] = write_band(library, sid, fv, entry["cube"])
            man["stores"].append(entry)
            man["next_id"] = sid + 1
            report.append((str(fv.path), n))
        with atomic_output(library / INDEX_FILE) as tmp:
            index.save(str(tmp))
        _write_json_atomic(library / MANIFEST_FILE, man)
        return report


def _entry(fv: FeatureVolume) -> dict:
    return {
        "path": str(fv.path.resolve()),
        "model": fv.model,
        "dim": fv.dim,
        "dtype": fv.dtype,
        "grid_shape": list(fv.grid.shape),
        "stride": list(fv.grid.stride),
        "origin": list(fv.grid.origin),
        "geometry": fv.cube_summary,
        "cube_fingerprint": fv.cube_fingerprint,
        "cube_content": fv.cube_content,
        "checkpoint_sha256": fv.checkpoint_sha256,
        "cube": cube_path(fv.path, fv.cube_summary.get("source")),
    }


def _signature(entry: dict) -> tuple:
    """What makes a store's keys decode the same way: a store re-embedded with other settings differs."""
    keys = ("model", "dim", "dtype", "grid_shape", "stride", "origin", "cube_fingerprint", "cube_content", "checkpoint_sha256")
    return tuple(str(entry.get(k)) for k in keys)


def _drop(index, store_ids) -> None:
    """Remove every vector of these stores from the index."""
    ids = np.asarray([int(i) for i in store_ids], np.uint64)
    keys = np.asarray(index.keys, np.uint64)
    index.remove(keys[np.isin(keys >> np.uint64(KEY_BITS), ids)])


# ---------------------------------------------------------------------- the click -> library call
def remove_stores(library, stores) -> list[tuple[str, int]]:
    """Take stores out of the library: ``[(store, vectors removed)]``. A store is named by its path and need not
    exist any more (the usual reason to remove it); one that is not in the library is an error."""
    library = Path(library)
    with StoreLock(library):
        lib = Library.open(library, view=False)
        by_path = {str(Path(s["path"]).resolve()): s for s in lib.stores}
        gone = []
        for store in stores:
            entry = by_path.get(str(Path(store).resolve()))
            if entry is None:
                raise SeisfmError(f"{store}: not in the library {library} (`seisfm library info` lists its stores)")
            if entry not in gone:
                gone.append(entry)
        man = lib.manifest
        _drop(lib._index, [e["id"] for e in gone])
        remove_bands(library, gone)
        man["stores"] = [s for s in man["stores"] if s not in gone]
        if not man["stores"]:
            man["model"] = man["dim"] = None
            (library / INDEX_FILE).unlink(missing_ok=True)
        else:
            with atomic_output(library / INDEX_FILE) as tmp:
                lib._index.save(str(tmp))
        _write_json_atomic(library / MANIFEST_FILE, man)
        return [(e["path"], int(e["vectors"])) for e in gone]


def query_from_points(features, points, *, space: str = "survey") -> np.ndarray:
    """The mean of the unit vectors at the clicked points (a FeatureMatrix), normalised: the library query."""
    vecs = [features.vector(features.to_grid(p, space)) for p in np.asarray(points, float).reshape(-1, 3)]
    if not vecs:
        raise SeisfmError("give at least one point (--pos IL,XL,T) to search the library for")
    q = np.mean(vecs, axis=0)
    norm = float(np.linalg.norm(q))
    if norm == 0:
        raise SeisfmError("the clicked vectors cancel out (their mean is zero); click elsewhere")
    return (q / norm).astype(np.float32)


def search_library(
    library,
    features,
    points,
    *,
    space: str = "survey",
    top: int = 20,
    radius: int = 1,
    seabed: bool = False,
    model: str | None = None,
    expansion: int = DEFAULT_EXPANSION,
) -> list[LibraryMatch]:
    """Clicks in one cube -> the best places across every cube of the library, one per body (what the dock's
    button calls); see :meth:`Library.search` for ``radius`` and ``seabed``.

    ``features``: the clicked cube's FeatureMatrix (the dock has it loaded) or its store path; ``model``: its
    model id when ``features`` is a FeatureMatrix (checked against the library's when given). The seabed band
    is searched too when a clicked point lies in its own cube's band (the user clicked the seabed).
    """
    from .matrix import FeatureMatrix

    lib = library if isinstance(library, Library) else Library.open(library)
    if not isinstance(features, FeatureMatrix):
        fv = FeatureVolume.open(features)
        lib.check_compatible(fv.model, fv.dim, fv.path)
        features = FeatureMatrix.from_volume(fv)
    else:
        lib.check_compatible(model or lib.model, features.dim, features.name)
    lib.check_stores_on_disk()
    query = query_from_points(features, points, space=space)
    clicked = [features.to_grid(p, space) for p in np.asarray(points, float).reshape(-1, 3)]
    in_band = not seabed and any(lib.in_seabed_band(features.name, g) for g in clicked)
    found = lib.search(query, top, radius=radius, seabed=seabed or in_band, expansion=expansion)
    lib.last["clicked_in_seabed_band"] = in_band
    return found


def describe_search(last: dict, keep_hint: str = "--keep-seabed lists them") -> str:
    """One line on what a library search looked at and left out (the CLI and the dock); ``last``:
    :attr:`Library.last`; ``keep_hint``: how to list the seabed hits."""
    if last.get("clicked_in_seabed_band"):
        seabed = "the seabed band searched too: a click is in it"
    elif last.get("seabed_left_out"):
        seabed = f"{last['seabed_left_out']} hits in the seabed band left out ({keep_hint})"
    else:
        seabed = "no hit in a seabed band" if last.get("seabed_bands") else "no seabed band known"
    return f"{last.get('entries', 0)} places from the {last.get('candidates', 0)} nearest vectors; {seabed}"
