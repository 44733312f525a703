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

Also here, because the widget, the demo and the benchmark share them: :func:`sync_clicks` (bring a
:class:`~napari_seisfm.search.CentroidSearch` to a new set of clicks with incremental add/remove,
never re-reading the store) and :func:`auto_threshold` (the default threshold rule).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SeisfmError

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
        np.savez_compressed(npz, index=index, value=labels[tuple(index.T)].astype(np.int32),
                            shape=np.asarray(labels.shape, np.int64))
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
    path.write_text(json.dumps(doc, indent=1))
    return path


def load_interpretation(path, *, fingerprint: str | None = None) -> Interpretation:
    """Read an interpretation; with ``fingerprint`` refuse one made on another cube."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SeisfmError(f"{path}: no such interpretation file") from None
    except (OSError, ValueError) as exc:
        raise SeisfmError(f"{path}: not a readable interpretation file ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SeisfmError(f"{path}: not a napari-seisfm interpretation file")
    if int(doc.get("version", 0)) > VERSION:
        raise SeisfmError(f"{path}: interpretation version {doc['version']} is newer than this napari-seisfm")
    cube = doc.get("cube") or {}
    if fingerprint is not None and cube.get("fingerprint") not in (None, fingerprint):
        raise SeisfmError(f"{path}: interpretation was made on another cube ({cube.get('path') or '?'}); it does not match the cube in use")
    interp = Interpretation(
        positives=[tuple(float(v) for v in p) for p in doc.get("positives", [])],
        negatives=[tuple(float(v) for v in p) for p in doc.get("negatives", [])],
        params={**DEFAULT_PARAMS, **(doc.get("params") or {})},
        features_path=_resolved_path((doc.get("features") or {}).get("path"), path),
        cube_path=_resolved_path(cube.get("path"), path),
        cube_fingerprint=cube.get("fingerprint"),
    )
    for p in interp.positives + interp.negatives:
        if len(p) != 3:
            raise SeisfmError(f"{path}: a click needs three coordinates (inline, crossline, time), got {list(p)}")
    meta = doc.get("labels")
    if meta:
        npz = path.with_name(meta["file"])
        try:
            with np.load(npz, allow_pickle=False) as z:
                shape = tuple(int(n) for n in z["shape"])
                index, value = z["index"], z["value"]
        except FileNotFoundError:
            raise SeisfmError(f"{npz}: label file of {path.name} is missing") from None
        except (OSError, ValueError, KeyError) as exc:
            raise SeisfmError(f"{npz}: not a readable label file ({exc.__class__.__name__})") from None
        labels = np.zeros(shape, np.int32)
        labels[tuple(index.T)] = value
        interp.labels = labels
        interp.labels_scale = None if meta.get("scale") is None else tuple(meta["scale"])
        interp.labels_translate = None if meta.get("translate") is None else tuple(meta["translate"])
        interp.labels_name = meta.get("name") or interp.labels_name
    return interp


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
