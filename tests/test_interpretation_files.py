"""Crafted and damaged interpretation files (issue 23, D12): the file is checked against its versioned schema
(pydantic) and its label file against what it declares, so opening one ends in a valid session or one
`SeisfmError` line; never a ValueError, TypeError, IndexError or MemoryError escaping into the widget (which
catches SeisfmError only). Plus a property test that mutates files at random.

``SEISFM_INTERP_CASES`` (default 400) and ``SEISFM_INTERP_SEED`` (default 2323) set the random cases;
docs/reliability.md reports a larger run.
"""

from __future__ import annotations

import copy
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.errors import SeisfmError
from napari_seisfm.interpretation import MAX_CLICKS, load_interpretation
from napari_seisfm.session import ClickToMapSession

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

CASES = int(os.environ.get("SEISFM_INTERP_CASES", "400"))
SEED = int(os.environ.get("SEISFM_INTERP_SEED", "2323"))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A store on a 32^3 synthetic cube (stride 4: an 8^3 grid), a session on it and a saved interpretation
    with clicks, parameters and painted labels on the feature grid."""
    d = tmp_path_factory.mktemp("interp")
    assert cli(["synth", str(d / "c.npy"), "--size", "32"]) == 0
    assert cli(["embed", str(d / "c.npy"), "--out", str(d / "f.zarr"), "--stride", "4"]) == 0
    s = ClickToMapSession.open(d / "f.zarr")
    g = s.features.cube_summary
    assert s.features.grid.shape == (8, 8, 8)
    first = [float(g["ilines"][0]), float(g["xlines"][0]), float(g["samples"][0])]
    s.add_click([first[0] + 8, first[1] + 8, first[2] + 8 * g["samples"][2]])
    s.add_click([first[0] + 20, first[1] + 20, first[2] + 24 * g["samples"][2]], negative=True)
    labels = np.zeros((8, 8, 8), np.int32)
    labels[1, 1, 1], labels[6, 6, 6], labels[2, 5, 3] = 1, 2, 2
    path = s.save(d / "good.json", labels=labels, labels_scale=(4.0, 4.0, 4.0), labels_translate=(0.0, 0.0, 0.0))
    return d, path


def write_case(folder: Path, doc, npz: dict | bytes | None = None, name="case") -> Path:
    path = folder / f"{name}.json"
    labels = doc.get("labels") if isinstance(doc, dict) else None
    if isinstance(labels, dict) and labels.get("file") == "good.labels.npz":
        labels["file"] = f"{name}.labels.npz"  # this case's own label file
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    target = folder / f"{name}.labels.npz"
    if isinstance(npz, bytes):
        target.write_bytes(npz)
    elif isinstance(npz, dict):
        np.savez_compressed(target, **npz)
    return path


def base(made) -> tuple[dict, dict]:
    d, path = made
    doc = json.loads(path.read_text())
    with np.load(d / "good.labels.npz") as z:
        npz = {k: z[k] for k in z.files}
    return doc, npz


def opens_or_one_line(session, path) -> str:
    """Open ``path`` in ``session`` the way the widget does; "ok" or "refused", anything else fails the test."""
    try:
        interp = session.load(path)
    except SeisfmError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        return "refused"
    # a valid open is consistent: what is reported is what counts, labels are a real volume
    assert interp.positives == session.positives and interp.negatives == session.negatives
    if interp.labels is not None:
        assert interp.labels.ndim == 3 and interp.labels.dtype == np.int32 and interp.labels.min() >= 0
    assert math.isfinite(session.threshold) and session.segmentation.k >= 1
    if session.grid_positives:
        session.update()  # the map the widget recomputes on open
    return "ok"


@pytest.fixture(scope="module")
def session(made):
    return ClickToMapSession.open(made[0] / "f.zarr")


# ------------------------------------------------------------------ the cases the battery found


def test_the_good_file_opens(made, session):
    d, path = made
    interp = session.load(path)
    assert len(interp.positives) == 1 and len(interp.negatives) == 1 and not interp.refused
    assert interp.labels.shape == (8, 8, 8) and int((interp.labels > 0).sum()) == 3


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda doc, npz: doc["params"].update(k=-5), "params.k"),
        (lambda doc, npz: doc["params"].update(k="5"), "params.k"),
        (lambda doc, npz: doc["params"].update(k=True), "params.k"),
        (lambda doc, npz: doc["params"].update(threshold=float("nan")), "params.threshold"),
        (lambda doc, npz: doc["params"].update(threshold=float("inf")), "params.threshold"),
        (lambda doc, npz: doc["params"].update(threshold="0.5"), "params.threshold"),
        (lambda doc, npz: doc["params"].update(decision="magic"), "unknown decision"),
        (lambda doc, npz: doc["params"].update(method=["knn"]), "params.method"),
        (lambda doc, npz: doc["params"].update(smooth=1e308), "params.smooth"),
        (lambda doc, npz: doc.update(positives=[[1, 2]]), "positives.0"),
        (lambda doc, npz: doc.update(positives=[[1, 2, "x"]]), "positives.0.2"),
        (lambda doc, npz: doc.update(positives=[[1, 2, float("nan")]]), "positives.0.2"),
        (lambda doc, npz: doc.update(negatives={"a": 1}), "negatives"),
        (lambda doc, npz: doc.update(positives=[[0, 0, 0]] * (MAX_CLICKS + 1)), "positives"),
        (lambda doc, npz: doc.update(version="1"), "version"),
        (lambda doc, npz: doc.update(version=0), "version"),
        (lambda doc, npz: doc.update(cube=[]), "cube"),
        (lambda doc, npz: doc["labels"].update(file="../good.labels.npz"), "labels.file"),
        (lambda doc, npz: doc["labels"].update(file="/etc/passwd"), "labels.file"),
        (
            lambda doc, npz: (
                doc["labels"].update(shape=[10**6, 10**6, 10**6], count=None) or npz.update(shape=np.array([10**6] * 3))
            ),
            "does not fit in memory",
        ),
        (lambda doc, npz: doc["labels"].update(shape=[8, 8]), "labels.shape"),
        (lambda doc, npz: doc["labels"].update(scale=[0, 1, 1]), "labels.scale.0"),
        (
            lambda doc, npz: npz.update(index=np.array([[-1, 0, 0], [1, 1, 1], [2, 2, 2]], np.int32)),
            "outside the (8, 8, 8) volume",
        ),
        (
            lambda doc, npz: npz.update(index=np.array([[8, 0, 0], [1, 1, 1], [2, 2, 2]], np.int32)),
            "outside the (8, 8, 8) volume",
        ),
        (lambda doc, npz: npz.update(value=np.array([1, -2, 3], np.int32)), "classes must be 1"),
        (lambda doc, npz: npz.update(value=np.array([1.5, 2, 3])), "not integers"),
        (lambda doc, npz: npz.update(value=np.array([1, 2], np.int32)), "are not (M, 3) and (M,)"),
        (lambda doc, npz: npz.update(shape=np.array([8, 8, 9])), "declares shape"),
        (lambda doc, npz: npz.pop("index"), "no 'index' array"),
        (lambda doc, npz: npz.update(value=np.array([object(), object(), object()], dtype=object)), "not a readable label file"),
    ],
)
def test_crafted_fields_are_one_line(made, session, tmp_path, change, match):
    doc, npz = base(made)
    change(doc, npz)
    path = write_case(tmp_path, doc, npz)
    with pytest.raises(SeisfmError, match=None) as info:
        session.load(path)
    assert match in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_negative_label_indices_no_longer_wrap_around(made, tmp_path):
    """Before: index -1 was voxel 7 (numpy's wrap-around), a label painted where nobody painted."""
    doc, npz = base(made)
    npz["index"] = np.array([[-1, -1, -1], [1, 1, 1], [2, 2, 2]], np.int32)
    path = write_case(tmp_path, doc, npz)
    with pytest.raises(SeisfmError, match="outside"):
        load_interpretation(path)


def test_unreadable_files_are_one_line(made, session, tmp_path):
    doc, npz = base(made)
    cases = {
        "not json": "{not json",
        "nested too deep": "[" * 100_000 + "]" * 100_000,
        "a list": "[1, 2, 3]",
        "bad utf-8": b"\xff\xfe{".decode("latin-1"),
    }
    for name, text in cases.items():
        path = write_case(tmp_path, text, None, name="t")
        with pytest.raises(SeisfmError) as info:
            session.load(path)
        assert "\n" not in str(info.value), name
    (tmp_path / "t.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(SeisfmError, match="not a readable interpretation"):
        session.load(tmp_path / "t.json")
    # a label file that is not a zip, one that is truncated, a zip bomb of a member
    for blob in (b"PK\x03\x04 truncated", (made[0] / "good.labels.npz").read_bytes()[:200]):
        path = write_case(tmp_path, doc, blob)
        with pytest.raises(SeisfmError, match="not a readable label file"):
            session.load(path)
    bomb = tmp_path / "case.labels.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in npz.items():
            if k != "index":
                with zf.open(f"{k}.npy", "w") as f:
                    np.lib.format.write_array(f, v)
        with zf.open("index.npy", "w") as f:  # 1 M rows of zeros: 12 MB unpacked from 12 kB packed (a real bomb is
            # just larger); its size in the zip directory is refused before anything is unpacked
            np.lib.format.write_array_header_1_0(f, {"descr": "<i4", "fortran_order": False, "shape": (1_000_000, 3)})
            f.write(bytes(12 * 1_000_000))
    path = write_case(tmp_path, doc, None)
    with pytest.raises(SeisfmError, match="larger than a"):
        session.load(path)


def test_clicks_outside_the_volume_are_left_out_and_reported_as_such(made, session, tmp_path):
    """Before: the widget said "opened: 3 positive clicks" while only one counted."""
    doc, npz = base(made)
    doc["positives"] += [[1e9, 0, 0], [doc["positives"][0][0], doc["positives"][0][1], -1e6]]
    path = write_case(tmp_path, doc, npz)
    interp = session.load(path)
    assert len(interp.positives) == 1 and interp.positives == session.positives
    assert len(interp.refused) == 2 and all("outside the volume" in r for r in interp.refused)


def test_older_and_minimal_files_still_open(made, session, tmp_path):
    doc, _ = base(made)
    minimal = {"format": "seisfm-interpretation", "positives": doc["positives"]}  # no version, params, labels
    assert opens_or_one_line(session, write_case(tmp_path, minimal, None, name="m")) == "ok"
    later = {**doc, "labels": None, "future_key": {"anything": [1, 2]}, "params": {**doc["params"], "new_param": 3}}
    assert opens_or_one_line(session, write_case(tmp_path, later, None, name="l")) == "ok"
    newer = {**doc, "version": 2}
    with pytest.raises(SeisfmError, match="newer than this napari-seisfm"):
        session.load(write_case(tmp_path, newer, None, name="n"))


# ------------------------------------------------------------------ property test: random mutations


def _random_value(rng, depth=0):
    kind = int(rng.integers(12 if depth < 2 else 9))
    if kind == 0:
        return None
    if kind == 1:
        return bool(rng.integers(2))
    if kind == 2:
        return int(rng.choice([0, 1, -1, -5, 7, 2**31, -(2**31) - 1, 2**63, 10**30]))
    if kind == 3:
        return float(rng.choice([0.0, -0.0, 0.5, -1.5, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf")]))
    if kind == 4:
        return "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, int(rng.integers(0, 12))))
    if kind == 5:
        return "x" * int(rng.choice([0, 1, 300, 5000]))
    if kind == 6:
        return [float(v) for v in rng.normal(0, 1000, 3)]
    if kind == 7:
        return str(rng.choice(["../x.npz", "/etc/passwd", "a.npz", ".npz", "knn", "linear", "probe", "centroid"]))
    if kind == 8:
        return []
    if kind == 9:
        return [_random_value(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))]
    if kind == 10:
        return {
            str(k): _random_value(rng, depth + 1) for k in rng.choice(["k", "a", "file", "shape", "x"], int(rng.integers(0, 3)))
        }
    return [[float(v) for v in rng.normal(0, 30, 3)] for _ in range(int(rng.choice([1, 10, 1000])))]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:4]):
            yield from _paths(v, (*prefix, i))


def _mutate_doc(rng, doc):
    paths = [p for p in _paths(doc) if p]
    p = paths[int(rng.integers(len(paths)))]
    parent = doc
    for key in p[:-1]:
        parent = parent[key]
    op = int(rng.integers(6))
    if op == 0 and isinstance(parent, dict):
        del parent[p[-1]]
    elif op == 1 and isinstance(parent[p[-1]], list) and parent[p[-1]]:
        parent[p[-1]] = parent[p[-1]] * int(rng.choice([0, 2, 50, 3000]))  # sizes
    elif op == 2 and isinstance(parent, dict):
        parent[str(rng.choice(["extra", "k ", "K", "version2"]))] = _random_value(rng)
    elif op == 3 and isinstance(parent[p[-1]], (int, float)) and not isinstance(parent[p[-1]], bool):
        parent[p[-1]] = parent[p[-1]] * float(rng.choice([-1, 0, 1e6, 1e-300, 1e300])) + float(rng.choice([0, 0.5, -1]))
    else:
        parent[p[-1]] = _random_value(rng)


def _mutate_npz(rng, npz):
    key = str(rng.choice(sorted(npz) or ["index"]))
    op = int(rng.integers(7))
    if op == 0:
        npz.pop(key, None)
    elif op == 1 and key in npz and npz[key].dtype.kind in "biuf":
        npz[key] = npz[key].astype(rng.choice([np.int8, np.int64, np.uint16, np.float32, np.bool_, np.float64]))
    elif op == 2 and key in npz and npz[key].size and npz[key].dtype.kind in "biuf":
        a = npz[key].astype(np.int64).copy()
        a.flat[int(rng.integers(a.size))] = int(rng.choice([-1, -9, 8, 9, 2**40, -(2**40), 0]))
        npz[key] = a
    elif op == 3 and key in npz:
        a = npz[key]
        npz[key] = a.reshape(-1) if a.ndim > 1 else a[:, None] if a.ndim == 1 else a
    elif op == 4 and key in npz:
        copies = int(rng.choice([0, 2, 5]))
        if npz[key].ndim:
            npz[key] = np.concatenate([npz[key]] * copies) if copies else npz[key][:0]
    elif op == 5:
        npz[key] = rng.integers(-3, 12, (int(rng.integers(0, 6)), 3)).astype(np.int32)
    else:
        npz[key] = np.array(str(rng.choice(["a", "b"])))


def test_random_mutations_end_in_one_line_or_a_valid_open(made, session, tmp_path):
    """CASES seeded cases: JSON fields deleted, retyped, resized and added; label arrays retyped, reshaped, resized
    and given out-of-range values; label files truncated or bit-flipped. Every case opens validly (and its map is
    computed when it has a positive click) or is one SeisfmError line."""
    rng = np.random.default_rng(SEED)
    good_doc, good_npz = base(made)
    npz_bytes = (made[0] / "good.labels.npz").read_bytes()
    outcomes = {"ok": 0, "refused": 0}
    escaped, first = {}, {}  # exception type -> cases; its first message
    for case in range(CASES):
        doc, npz = copy.deepcopy(good_doc), {k: v.copy() for k, v in good_npz.items()}
        blob = None
        for _ in range(int(rng.integers(1, 3))):
            what = rng.random()
            if what < 0.6:
                _mutate_doc(rng, doc)
            elif what < 0.85:
                _mutate_npz(rng, npz)
            else:
                raw = bytearray(npz_bytes)
                if rng.random() < 0.5:
                    raw = raw[: int(rng.integers(len(raw)))]
                else:
                    for _ in range(int(rng.integers(1, 8))):
                        raw[int(rng.integers(len(raw)))] ^= 1 << int(rng.integers(8))
                blob = bytes(raw)
        name = f"p{case % 4}"
        labels = doc.get("labels")
        if isinstance(labels, dict) and labels.get("file") == "good.labels.npz":
            labels["file"] = f"{name}.labels.npz"
        text = json.dumps(doc) if rng.random() < 0.95 else json.dumps(doc)[: int(rng.integers(1, 200))]
        (tmp_path / f"{name}.labels.npz").unlink(missing_ok=True)
        path = write_case(tmp_path, text, blob if blob is not None else npz, name=name)
        try:
            outcomes[opens_or_one_line(session, path)] += 1
        except Exception as exc:  # noqa: BLE001 - the property: nothing but SeisfmError escapes
            name = exc.__class__.__name__
            escaped[name] = escaped.get(name, 0) + 1
            first.setdefault(name, f"case {case}: {exc}"[:300])
    assert not escaped, f"{sum(escaped.values())} of {CASES} cases raised {escaped}; first of each: {first}"
    assert sum(outcomes.values()) == CASES
    assert outcomes["ok"] > CASES // 20 and outcomes["refused"] > CASES // 20, outcomes  # both sides exercised
    print(f"interpretation property test: seed {SEED}, {CASES} cases, {outcomes}")
