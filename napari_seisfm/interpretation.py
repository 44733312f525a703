"""An interpretation you can save today and resume tomorrow (headless; the Click-to-map widget's state).

An interpretation is what the geoscientist did, not what was computed from it: the clicks (in survey
coordinates: inline, crossline, time/depth), the painted training labels, the parameters (k,
weighting, threshold) and which cube and feature store it belongs to. Maps are recomputed on load
(a fraction of a second), so the file stays small.

File format ``seisfm-interpretation`` version 1: one JSON file, plus ``<stem>.labels.npz`` beside it
when there are labels. The npz is sparse: ``index`` (M, 3) int32 voxel indices of the labelled
voxels of the label volume, ``value`` (M,) int32 their classes, ``shape`` (3,). The JSON records the
label volume's ``scale``/``translate`` (survey units), so it is placed where it was painted, on the
feature grid or on the cube grid.

Also here, because the widget, the demo and the benchmark share it: :func:`sync_clicks` (bring a
:class:`~napari_seisfm.search.CentroidSearch` to a new set of clicks with incremental add/remove,
never re-reading the store). The default threshold rule is ``search.region.auto_threshold``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SeisfmError
from .io.output import atomic_output

FORMAT = "seisfm-interpretation"
VERSION = 1
DEFAULT_PARAMS = {"k": 5, "weighted": False, "threshold": None}


@dataclass
class Interpretation:
    """Clicks, labels and parameters of one interpretation session."""

    positives: list = field(default_factory=list)  # [(inline, crossline, time)] survey units
    negatives: list = field(default_factory=list)
    labels: np.ndarray | None = None  # integer label volume (0 = unlabelled), feature or cube grid
    labels_scale: tuple | None = None  # where the label volume sits (napari scale/translate, survey units)
    labels_translate: tuple | None = None
    labels_name: str = "training labels"
    params: dict = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    features_path: str | None = None
    cube_path: str | None = None
    cube_fingerprint: str | None = None
    refused: list = field(default_factory=list)  # clicks of the file that could not count, with the reason (set on open)


def labels_path_for(path) -> Path:
    path = Path(path)
    return path.with_name(path.name.removesuffix(".json") + ".labels.npz")


def _stored_path(target: str | None, json_path: Path) -> str | None:
    """Paths are stored relative to the interpretation file when they sit beside or below it, else absolute,
    so the file can be reopened from any working directory and the folder can be moved as a whole."""
    if not target:
        return target
    target = Path(target).resolve()
    try:
        return target.relative_to(json_path.resolve().parent).as_posix()
    except ValueError:
        return str(target)


def _resolved_path(stored: str | None, json_path: Path) -> str | None:
    if not stored:
        return stored
    return str((json_path.parent / stored).resolve()) if not Path(stored).is_absolute() else stored


def save_interpretation(path, interp: Interpretation) -> Path:
    """Write the JSON file (and the sparse label npz when there are labels); returns the JSON path."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        path = path.with_name(path.name + ".json")
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "cube": {"path": _stored_path(interp.cube_path, path), "fingerprint": interp.cube_fingerprint},
        "features": {"path": _stored_path(interp.features_path, path)},
        "positives": [[float(v) for v in p] for p in interp.positives],
        "negatives": [[float(v) for v in p] for p in interp.negatives],
        "params": {**DEFAULT_PARAMS, **interp.params},
        "labels": None,
    }
    npz = labels_path_for(path)
    if interp.labels is not None and np.any(interp.labels):
        labels = np.asarray(interp.labels)
        if labels.ndim != 3:
            raise SeisfmError(f"{path}: labels must be a 3-D volume, got shape {labels.shape}")
        index = np.argwhere(labels > 0).astype(np.int32)
        with atomic_output(npz) as tmp:
            np.savez_compressed(
                tmp, index=index, value=labels[tuple(index.T)].astype(np.int32), shape=np.asarray(labels.shape, np.int64)
            )
        doc["labels"] = {
            "file": npz.name,
            "shape": list(labels.shape),
            "scale": None if interp.labels_scale is None else [float(v) for v in interp.labels_scale],
            "translate": None if interp.labels_translate is None else [float(v) for v in interp.labels_translate],
            "name": interp.labels_name,
            "count": int(len(index)),
        }
    elif npz.exists():
        npz.unlink()  # a stale label file from an earlier save must not come back on load
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
    return path


MAX_FILE_BYTES = 64 * 2**20  # an interpretation file is clicks and parameters: a few kB, 100 000 clicks ~ 6 MB
MAX_CLICKS = 100_000
MAX_LABEL_VOXELS = 2**34  # per axis product; memory is checked as well (int32 volume)


def _schema():
    """The versioned schema of ``seisfm-interpretation`` files (pydantic, strict: a string is not a number,
    ``true`` is not 1, NaN and infinity are not numbers). Built on first use (pydantic costs ~0.1 s to import)."""
    global _SCHEMA
    if _SCHEMA is not None:
        return _SCHEMA
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field, field_validator

    Finite = Annotated[float, Field(allow_inf_nan=False)]
    Point = Annotated[list[Finite], Field(min_length=3, max_length=3)]
    Text = Annotated[str, Field(max_length=4096)]

    class Model(BaseModel):
        model_config = ConfigDict(strict=True, extra="ignore")  # keys of later versions are ignored, not trusted

    class CubeRef(Model):
        path: Text | None = None
        fingerprint: Annotated[str, Field(max_length=128)] | None = None

    class FeaturesRef(Model):
        path: Text | None = None

    class Params(Model):
        k: Annotated[int, Field(ge=1, le=100000)] | None = None
        weighted: bool | None = None
        threshold: Finite | None = None
        method: Annotated[str, Field(max_length=64)] | None = None
        smooth: (
            Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
            | Annotated[list[Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]], Field(min_length=3, max_length=3)]
            | None
        ) = None
        decision: Annotated[str, Field(max_length=64)] | None = None
        connected: bool | None = None

        @field_validator("method")
        @classmethod
        def _method(cls, v):
            from .search.methods import SEGMENTERS

            if v is not None and v not in SEGMENTERS:
                raise ValueError(f"unknown segmentation method {v!r} (known: {', '.join(SEGMENTERS)})")
            return v

        @field_validator("decision")
        @classmethod
        def _decision(cls, v):
            from .search.methods import DECISIONS

            if v is not None and v not in DECISIONS:
                raise ValueError(f"unknown decision {v!r} (known: {', '.join(DECISIONS)})")
            return v

    class Labels(Model):
        file: Annotated[str, Field(min_length=5, max_length=255, pattern=r"^[^/\\]+\.npz$")]
        shape: Annotated[list[Annotated[int, Field(ge=1, le=10_000_000)]], Field(min_length=3, max_length=3)]
        scale: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)] | None = (
            None
        )
        translate: Point | None = None
        name: Annotated[str, Field(max_length=256)] | None = None
        count: Annotated[int, Field(ge=0)] | None = None

    class InterpretationFile(Model):
        format: Literal["seisfm-interpretation"]
        version: Annotated[int, Field(ge=1, le=VERSION)] = 1
        cube: CubeRef | None = None
        features: FeaturesRef | None = None
        positives: Annotated[list[Point], Field(max_length=MAX_CLICKS)] = []
        negatives: Annotated[list[Point], Field(max_length=MAX_CLICKS)] = []
        params: Params | None = None
        labels: Labels | None = None

    _SCHEMA = InterpretationFile
    return _SCHEMA


_SCHEMA = None


def _schema_error(path, exc) -> SeisfmError:
    """A pydantic ValidationError as one line: where in the file and what is wrong, for the first problem."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    where = ".".join(str(p) for p in first.get("loc", ())) or "the file"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    msg = " ".join(str(first.get("msg", "")).split()).removeprefix("Value error, ")
    return SeisfmError(f"{path}: not a valid interpretation file (version {VERSION}): {where}: {msg}{more}")


def load_interpretation(path, *, fingerprint: str | None = None) -> Interpretation:
    """Read an interpretation; with ``fingerprint`` refuse one made on another cube.

    The file is checked against the versioned schema (:func:`_schema`) and its label file against the
    shape it declares, so a crafted or damaged file is one :class:`SeisfmError` line, never another
    exception: clicks are three finite numbers, ``k`` at least 1, the threshold finite, label voxels
    inside the label volume with classes from 1, the label volume within the memory available."""
    from pydantic import ValidationError

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SeisfmError(
                f"{path}: {size / 2**20:.0f} MiB is too large for an interpretation file (at most {MAX_FILE_BYTES // 2**20} MiB)"
            )
        text = path.read_text()
        doc = json.loads(text)
    except FileNotFoundError:
        raise SeisfmError(f"{path}: no such interpretation file") from None
    except (OSError, ValueError, RecursionError, MemoryError) as exc:  # also bad UTF-8 and JSON nested too deep
        raise SeisfmError(f"{path}: not a readable interpretation file ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SeisfmError(f"{path}: not a napari-seisfm interpretation file")
    version = doc.get("version", 1)
    if type(version) is int and version > VERSION:  # noqa: E721 - true is not a version
        raise SeisfmError(f"{path}: interpretation version {version} is newer than this napari-seisfm")
    try:
        f = _schema().model_validate(doc)
    except ValidationError as exc:
        raise _schema_error(path, exc) from None
    except RecursionError:
        raise SeisfmError(f"{path}: not a readable interpretation file (nested too deep)") from None
    cube_path, cube_fingerprint = (f.cube.path, f.cube.fingerprint) if f.cube is not None else (None, None)
    if fingerprint is not None and cube_fingerprint not in (None, fingerprint):
        raise SeisfmError(
            f"{path}: interpretation was made on another cube ({cube_path or '?'}); it does not match the cube in use"
        )
    params = f.params.model_dump(exclude_unset=True) if f.params is not None else {}
    if isinstance(params.get("smooth"), list):
        params["smooth"] = tuple(params["smooth"])
    interp = Interpretation(
        positives=[tuple(p) for p in f.positives],
        negatives=[tuple(p) for p in f.negatives],
        params={**DEFAULT_PARAMS, **params},
        features_path=_resolved_path(f.features.path if f.features else None, path),
        cube_path=_resolved_path(cube_path, path),
        cube_fingerprint=cube_fingerprint,
    )
    if f.labels is not None:
        meta = f.labels
        interp.labels = _read_labels(path, path.with_name(meta.file), tuple(meta.shape), meta.count)
        interp.labels_scale = None if meta.scale is None else tuple(meta.scale)
        interp.labels_translate = None if meta.translate is None else tuple(meta.translate)
        interp.labels_name = meta.name or interp.labels_name
    return interp


def _read_labels(path: Path, npz: Path, shape: tuple, count: int | None) -> np.ndarray:
    """The sparse label file as a volume, every part checked before it is trusted: member sizes before they
    are read (no zip bomb), dtypes, index rows inside ``shape`` (no negative index wrapping around), classes
    from 1 up, and the volume within half the available memory."""
    import zipfile

    from .cube import available_memory

    n = int(np.prod(shape, dtype=object))
    free = available_memory()
    if n > MAX_LABEL_VOXELS or (free and n * 4 > free // 2):
        raise SeisfmError(f"{path}: label volume {shape} ({n * 4 / 2**30:.1f} GiB) does not fit in memory")
    bad = f"{npz}: not a valid label file of {path.name}:"
    try:
        with zipfile.ZipFile(npz) as zf:
            sizes = {i.filename: i.file_size for i in zf.infolist()}
        limit = 24 * n + 4096  # int64 rows of three indices, the most a label file can need
        for member in ("index.npy", "value.npy", "shape.npy"):
            if member not in sizes:
                raise SeisfmError(f"{bad} no {member[:-4]!r} array")
            if sizes[member] > limit:
                raise SeisfmError(f"{bad} its {member[:-4]!r} array is larger than a {shape} volume can need")
        with np.load(npz, allow_pickle=False) as z:
            stored, index, value = np.asarray(z["shape"]), np.asarray(z["index"]), np.asarray(z["value"])
    except FileNotFoundError:
        raise SeisfmError(f"{npz}: label file of {path.name} is missing") from None
    except SeisfmError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad zip, bad .npy header, pickled objects, truncated data: all one line
        raise SeisfmError(f"{npz}: not a readable label file ({exc.__class__.__name__})") from None
    for name, a in (("shape", stored), ("index", index), ("value", value)):
        if a.dtype.kind not in "iu":
            raise SeisfmError(f"{bad} its {name!r} array holds {a.dtype}, not integers")
    if stored.shape != (3,) or tuple(int(v) for v in stored) != shape:
        raise SeisfmError(f"{bad} it declares shape {stored.tolist()}, the interpretation {list(shape)}")
    if index.ndim != 2 or index.shape[1] != 3 or value.shape != (index.shape[0],):
        raise SeisfmError(f"{bad} index {index.shape} and value {value.shape} are not (M, 3) and (M,)")
    if count is not None and count != len(index):
        raise SeisfmError(f"{bad} it holds {len(index)} labelled voxels, the interpretation says {count}")
    if len(index):
        if index.min() < 0 or (index.max(axis=0) >= np.asarray(shape)).any():
            raise SeisfmError(f"{bad} labelled voxels outside the {shape} volume")
        if value.min() < 1 or value.max() > np.iinfo(np.int32).max:
            raise SeisfmError(
                f"{bad} classes must be 1 to {np.iinfo(np.int32).max}, found {int(value.min())}..{int(value.max())}"
            )
    try:
        labels = np.zeros(shape, np.int32)
    except MemoryError:
        raise SeisfmError(f"{path}: label volume {shape} does not fit in memory") from None
    labels[tuple(index.astype(np.int64).T)] = value.astype(np.int32)
    return labels


def sync_clicks(search, positives, negatives) -> bool:
    """Make ``search``'s clicks equal the given grid points (as multisets) by adding/removing only the
    difference, so one new click costs one vector lookup. Returns True when anything changed."""
    changed = False
    for wanted, negative in ((positives, False), (negatives, True)):
        have = Counter(tuple(p) for p in (search.negatives if negative else search.positives))
        want = Counter(tuple(int(v) for v in p) for p in wanted)
        for g, n in (have - want).items():
            for _ in range(n):
                search.remove(g, negative=negative)
                changed = True
        for g, n in (want - have).items():
            for _ in range(n):
                search.add(g, negative=negative)
                changed = True
    return changed
