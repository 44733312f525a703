"""The Click-to-map dock's "Survey library" box on a real usearch library of two embedded cubes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.plugin.widgets import click_to_map as ctm
from napari_seisfm.plugin.widgets.click_to_map import POSITIVE, ClickToMapWidget

WAIT = 20_000
CLICK = (1020.0, 2020.0, 80.0)  # inline, crossline, ms: inside both cubes, on a grid point of both


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """Cube A (40^3, inlines 1000-1039) and B = A's inlines 1008-1039 (same geology, shifted), embedded at
    stride 4, in one library."""
    from napari_seisfm.search.library import add_stores

    d = tmp_path_factory.mktemp("libdock")
    assert cli(["synth", str(d / "a.npy"), "--size", "40"]) == 0
    a = np.load(d / "a.npy")
    geo = json.loads((d / "a.npy.json").read_text())
    np.save(d / "b.npy", a[8:])
    geo.update(shape=[32, 40, 40], ilines=[1008, 1039, 1], source=str(d / "b.npy"))
    geo.pop("fingerprint", None)
    (d / "b.npy.json").write_text(json.dumps(geo))
    for name in ("a", "b"):
        assert cli(["embed", str(d / f"{name}.npy"), "--out", str(d / f"{name}.zarr"), "--stride", "4"]) == 0
    add_stores(d / "seisfm-library", [d / "a.zarr", d / "b.zarr"], threads=1)  # a graph built the same every run
    return d


@pytest.fixture
def errors(monkeypatch):
    seen = []
    monkeypatch.setattr(ctm._notify, "show_error", seen.append)
    from napari_seisfm.plugin.widgets import _library

    monkeypatch.setattr(_library._notify, "show_error", seen.append)
    return seen


def test_search_library_lists_matches_in_both_cubes_and_opens_the_other(make_napari_viewer, qtbot, survey, errors):
    viewer = make_napari_viewer()
    viewer.open(str(survey / "a.npy"), plugin="napari-seisfm")
    widget = ClickToMapWidget(viewer)
    widget.library.search()  # nothing loaded yet
    assert errors and "load a feature store first" in errors[-1]
    widget.load_features(str(survey / "a.zarr"))
    qtbot.waitUntil(lambda: widget.session is not None, timeout=WAIT)
    widget.library.search()
    assert "add a positive click first" in errors[-1]
    viewer.layers[POSITIVE].add(list(CLICK))
    qtbot.waitUntil(lambda: bool(widget.session.positives), timeout=WAIT)
    assert widget.library.search()  # the default library: seisfm-library beside the store, in the dock's job
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=WAIT)
    matches = widget.library.matches
    assert widget.library.results.count() == len(matches) > 0
    stores = {m.store.rsplit("/", 1)[-1] for m in matches}
    assert stores == {"a.zarr", "b.zarr"}
    i = next(k for k, m in enumerate(matches) if m.store.endswith("b.zarr"))
    assert tuple(matches[i].survey) == CLICK  # the same place in the other survey
    # activating it opens cube B at that place and points the dock at B's store
    m = widget.library.open_match(i)
    assert m is matches[i] and "b" in viewer.layers
    assert widget.cube.value.name == "b" and widget.store.currentText().endswith("b.zarr")
    from napari_seisfm.plugin import view

    np.testing.assert_allclose(view.world_to_survey(viewer, viewer.dims.point), CLICK)


def test_a_missing_library_is_one_line(make_napari_viewer, qtbot, survey, errors, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(survey / "a.npy"), plugin="napari-seisfm")
    widget = ClickToMapWidget(viewer)
    widget.load_features(str(survey / "a.zarr"))
    qtbot.waitUntil(lambda: widget.session is not None, timeout=WAIT)
    viewer.layers[POSITIVE].add(list(CLICK))
    qtbot.waitUntil(lambda: bool(widget.session.positives), timeout=WAIT)
    widget.library.library.value = str(tmp_path / "nowhere")
    assert not widget.library.search()
    assert "no survey library there" in errors[-1] and "seisfm library add" in errors[-1]


def _search_and_wait(widget, qtbot):
    assert widget.library.search()
    qtbot.waitUntil(lambda: widget.jobs.worker is None, timeout=WAIT)
    return widget.library.matches


def test_a_match_in_a_cube_embedded_from_a_relative_path_opens_from_anywhere(
    make_napari_viewer, qtbot, survey, errors, tmp_path, monkeypatch
):
    """`seisfm embed rel.npy` in one folder, the library searched and the match opened from another."""
    import shutil

    from napari_seisfm.search.library import add_stores

    d = tmp_path / "elsewhere"
    d.mkdir()
    for suffix in (".npy", ".npy.json"):
        shutil.copy(survey / f"b{suffix}", d / f"rel{suffix}")
    monkeypatch.chdir(d)
    assert cli(["embed", "rel.npy", "--out", "rel.zarr", "--stride", "4"]) == 0
    add_stores(tmp_path / "lib", [survey / "a.zarr", d / "rel.zarr"], threads=1)
    monkeypatch.chdir(tmp_path)  # the desk runs from another folder
    viewer = make_napari_viewer()
    viewer.open(str(survey / "a.npy"), plugin="napari-seisfm")
    widget = ClickToMapWidget(viewer)
    widget.load_features(str(survey / "a.zarr"))
    qtbot.waitUntil(lambda: widget.session is not None, timeout=WAIT)
    viewer.layers[POSITIVE].add(list(CLICK))
    qtbot.waitUntil(lambda: bool(widget.session.positives), timeout=WAIT)
    widget.library.library.value = str(tmp_path / "lib")
    matches = _search_and_wait(widget, qtbot)
    i = next(k for k, m in enumerate(matches) if m.store.endswith("rel.zarr"))
    assert matches[i].cube == str((d / "rel.npy").resolve())
    assert widget.library.open_match(i) is matches[i] and not errors
    assert "rel" in viewer.layers and widget.store.currentText().endswith("rel.zarr")
    row = widget.library.results.item(0).text()
    assert row.startswith("1. a ") and "hits)" in row  # one row per body, its size shown


def test_the_seabed_box_lists_the_band(make_napari_viewer, qtbot, survey, errors):
    from napari_seisfm.search.library import Library

    viewer = make_napari_viewer()
    viewer.open(str(survey / "a.npy"), plugin="napari-seisfm")
    widget = ClickToMapWidget(viewer)
    widget.load_features(str(survey / "a.zarr"))
    qtbot.waitUntil(lambda: widget.session is not None, timeout=WAIT)
    lib = Library.open(survey / "seisfm-library")
    bands = {e["path"]: lib.seabed_bands()[e["id"]] for e in lib.stores}

    def in_band(m):
        return m.grid_index[2] < bands[m.store][m.grid_index[:2]]

    shallow = (1020.0, 2020.0, 32.0)  # just under the band of a's column there
    g = widget.session.features.to_grid(shallow, "survey")
    assert not lib.in_seabed_band(survey / "a.zarr", g) and lib.in_seabed_band(survey / "a.zarr", (g[0], g[1], g[2] - 1))
    viewer.layers[POSITIVE].add(list(shallow))
    qtbot.waitUntil(lambda: bool(widget.session.positives), timeout=WAIT)
    assert not widget.library.seabed.isChecked()  # left out by default
    assert not any(in_band(m) for m in _search_and_wait(widget, qtbot))
    widget.library.seabed.setChecked(True)
    assert any(in_band(m) for m in _search_and_wait(widget, qtbot))
