"""`seisfm features import/export/info` and the napari reader for feature arrays computed elsewhere."""

from __future__ import annotations

import json
import threading
import zipfile

import h5py
import numpy as np
import pytest
import zarr

from napari_seisfm.cli import main as cli
from napari_seisfm.cube import Geometry
from napari_seisfm.errors import SeisfmCancelled, SeisfmError
from napari_seisfm.extract import extract_features
from napari_seisfm.io import open_cube
from napari_seisfm.io.npy import write_npy
from napari_seisfm.search import FeatureMatrix, make_search
from napari_seisfm.store.interchange import export_features, import_features
from napari_seisfm.store.sources import fit_grid, open_source_array
from napari_seisfm.store.volume import FeatureVolume
from napari_seisfm.synthetic import make_survey

SHAPE = (40, 36, 64)  # cube; at stride 4 the grid is (10, 9, 16)
GRID = (10, 9, 16)
CLICKS = {"pos": [(2, 3, 8), (5, 4, 9)], "neg": [(8, 7, 2)]}  # grid indices


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A cube file, its `embed` store and a 'foreign' 48-d float32 array on its stride-4 grid."""
    d = tmp_path_factory.mktemp("fi")
    s = make_survey(SHAPE, seed=3)
    geometry = Geometry.regular(SHAPE, first_inline=s.first_inline, first_crossline=s.first_crossline, source="synthetic")
    cube = write_npy(d / "cube.npy", s.amplitude, geometry)
    store = extract_features(cube, d / "embed.zarr", stride=4)
    raw = foreign_vectors(s.amplitude[::4, ::4, ::4])
    np.save(d / "raw_last.npy", raw)
    return {"dir": d, "cube": cube, "store": store.path, "raw": raw, "amplitude": s.amplitude}


def foreign_vectors(section, dim=48, seed=0):
    """Smooth 48-d vectors built from the amplitudes under the grid (a stand-in for a cluster's embeddings)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(section, np.float32)
    feats = np.stack([a, np.roll(a, 1, 2), np.roll(a, -1, 2), np.abs(a), a**2, np.ones_like(a)], -1)
    return (feats @ rng.standard_normal((6, dim)).astype(np.float32) + 0.05 * rng.standard_normal((*a.shape, dim))).astype(
        np.float32
    )


def search_map(store, cube=None):
    if cube is not None:
        with open_cube(cube) as opened:
            return search_map(store, None) if FeatureMatrix.open(store, cube=opened) else None
    fm = FeatureMatrix.open(store)
    search = make_search(fm, "probe")
    search.set_clicks(CLICKS["pos"], CLICKS["neg"], space="grid")
    return search.score_map()


def stored(path):
    v, ok = FeatureVolume.open(path).load()
    return v, ok


# ------------------------------------------------------------------ round trip and layouts


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_round_trip_export_import_gives_the_same_maps(data, tmp_path, suffix):
    out = tmp_path / f"exported{suffix}"
    assert cli(["features", "export", str(data["store"]), str(out)]) == 0
    src = open_source_array(out)
    assert src.shape == (*GRID, FeatureVolume.open(data["store"]).dim) and src.dtype == np.float32
    src.close()
    imported = tmp_path / "imported.zarr"
    assert cli(["features", "import", str(out), "--cube", str(data["cube"]), "--out", str(imported)]) == 0
    a, b = FeatureVolume.open(data["store"]), FeatureVolume.open(imported)
    assert (a.grid, a.dim, a.dtype, a.model) == (b.grid, b.dim, b.dtype, b.model)  # grid and model from the export's record
    va, oka = a.load()
    vb, okb = b.load()
    assert np.array_equal(oka, okb)
    assert np.abs(va.astype(int) - vb.astype(int)).max() <= 1  # int8 rounding of re-normalised unit vectors
    ma, mb = search_map(data["store"], data["cube"]), search_map(imported, data["cube"])
    assert np.abs(ma - mb).max() < 0.02 and np.corrcoef(ma.ravel(), mb.ravel())[0, 1] > 0.999
    # and through `seisfm search`, exactly as an `embed` store
    maps = []
    for store in (data["store"], imported):
        target = tmp_path / f"map_{store.stem}.npy"
        assert (
            cli(
                [
                    "search",
                    str(store),
                    "--pos",
                    "2,3,8",
                    "--neg",
                    "8,7,2",
                    "--coords",
                    "grid",
                    "--cube",
                    str(data["cube"]),
                    "--out",
                    str(target),
                    "--top",
                    "0",
                ]
            )
            == 0
        )
        maps.append(np.load(target))
    assert np.abs(maps[0] - maps[1]).max() < 0.02


def test_channel_first_and_last_give_the_same_store(data, tmp_path):
    raw = data["raw"]
    np.save(tmp_path / "first.npy", np.ascontiguousarray(np.moveaxis(raw, -1, 0)))
    last = import_features(data["dir"] / "raw_last.npy", data["cube"], tmp_path / "last.zarr", pca=16)
    first = import_features(tmp_path / "first.npy", data["cube"], tmp_path / "first.zarr", pca=16)
    assert last.provenance["layout"] == "il,xl,t,c" and first.provenance["layout"] == "c,il,xl,t"
    assert last.grid.stride == first.grid.stride == (4, 4, 4) and last.dim == 16
    assert np.array_equal(stored(last.path)[0], stored(first.path)[0])
    # the PCA of `embed`: the stored vectors are the projections onto its top components
    ok = np.isfinite(raw).all(-1).reshape(-1)
    x = raw.reshape(-1, 48)[ok]
    v = stored(last.path)[0][ok].astype(np.float32) / 127
    proj = (x - last.pca_mean) @ last.pca_components.T
    proj /= np.linalg.norm(proj, axis=1, keepdims=True)
    assert np.abs(v - proj).max() < 0.01
    kept = np.linalg.norm(proj, axis=1).mean()  # unit after normalisation; the basis explains most of the variance
    centred = x - x.mean(0)
    explained = ((centred @ last.pca_components.T) ** 2).sum() / (centred**2).sum()
    assert kept == pytest.approx(1.0) and explained > 0.9


def test_float16_input_and_provenance(data, tmp_path):
    np.save(tmp_path / "half.npy", data["raw"].astype(np.float16))
    f32 = import_features(data["dir"] / "raw_last.npy", data["cube"], tmp_path / "f32.zarr", pca=16)
    f16 = import_features(
        tmp_path / "half.npy", data["cube"], tmp_path / "f16.zarr", pca=16, model_name="ncs-vit-b 2.5d (cluster run 7)"
    )
    assert f16.model == "ncs-vit-b 2.5d (cluster run 7)" and f32.model == "imported:raw_last.npy"
    p = f16.provenance
    assert p["source_dtype"] == "float16" and p["source_shape"] == [*GRID, 48] and p["imported_from"].endswith("half.npy")
    assert len(p["source_sha256"]) == 16 and p["imported_at"]
    ma, mb = search_map(f32.path), search_map(f16.path)
    assert np.corrcoef(ma.ravel(), mb.ravel())[0, 1] > 0.99


def test_nan_rows_are_invalid(data, tmp_path):
    raw = data["raw"].copy()
    raw[3, 4, 5] = np.nan
    raw[0, :, 2, 7] = np.inf  # one bad component is enough
    np.save(tmp_path / "nan.npy", raw)
    fv = import_features(tmp_path / "nan.npy", data["cube"], tmp_path / "nan.zarr", pca=16)
    _, ok = stored(fv.path)
    ok = ok.reshape(GRID)
    assert not ok[3, 4, 5] and not ok[0, :, 2].any()
    assert ok.sum() == ok.size - 1 - GRID[1]
    fm = FeatureMatrix.open(fv.path)
    assert np.isfinite(fm.vectors).all()


def test_dead_traces_of_the_cube_are_invalid(data, tmp_path):
    amplitude = data["amplitude"].copy()
    amplitude[4, 8] = np.nan  # a dead trace under grid point (1, 2)
    geometry = Geometry.regular(SHAPE, source="dead")
    cube = write_npy(tmp_path / "dead.npy", amplitude, geometry)
    np.save(tmp_path / "raw.npy", data["raw"])
    fv = import_features(tmp_path / "raw.npy", cube, tmp_path / "d.zarr", pca=16)
    ok = stored(fv.path)[1].reshape(GRID)
    assert not ok[1, 2].any() and ok.sum() == ok.size - GRID[2]


def test_someone_elses_sidecar_gives_only_plain_keys(data, tmp_path):
    np.save(tmp_path / "emb.npy", data["raw"])
    (tmp_path / "emb.npy.json").write_text(json.dumps({"stride": [4, 4, 4], "ilines": [1, 2, 1], "note": "cluster run"}))
    with open_source_array(tmp_path / "emb.npy") as src:
        assert src.attrs == {"stride": [4, 4, 4]}


# ------------------------------------------------------------------ grids


def test_grid_inferred_from_shape_alone():
    lay, grid = fit_grid((20, 18, 32, 8), SHAPE)
    assert lay == ("il", "xl", "t", "c") and grid.stride == (2, 2, 2) and grid.origin == (0, 0, 0)
    lay, grid = fit_grid((64, 10, 9, 32), SHAPE)  # channel-first, time at stride 2
    assert lay == ("c", "il", "xl", "t") and grid.stride == (4, 4, 2)
    with pytest.raises(
        SeisfmError, match=r"2 grids fit .*layout il,xl,t,c stride \(4, 4, 4\).*layout c,il,xl,t stride \(4, 4, 4\)"
    ):
        fit_grid((8, 8, 8, 8), (32, 32, 32))  # both layouts fit: the candidates are listed
    assert fit_grid((8, 8, 8, 8), (32, 32, 32), layout=("c", "il", "xl", "t"))[1].stride == (4, 4, 4)


def test_grid_given_stride_and_origin(data, tmp_path):
    """NCS-style windows centred at 2 + 4k: inference (origin 0) refuses, --stride/--origin place it."""
    raw = data["raw"][:, :, :15]
    np.save(tmp_path / "centred.npy", raw)
    with pytest.raises(SeisfmError, match="fits no stride"):
        import_features(tmp_path / "centred.npy", data["cube"], tmp_path / "c.zarr")
    fv = import_features(tmp_path / "centred.npy", data["cube"], tmp_path / "c.zarr", stride=(4, 4, 4), origin=(0, 0, 2), pca=0)
    assert fv.grid.origin == (0, 0, 2) and fv.grid.shape == (10, 9, 15)
    assert cli(["features", "info", str(fv.path)]) == 0


def test_impossible_grid_lists_the_cube_grids(data, tmp_path, capsys):
    np.save(tmp_path / "odd.npy", np.zeros((11, 9, 16, 4), np.float32))
    assert (
        cli(["features", "import", str(tmp_path / "odd.npy"), "--cube", str(data["cube"]), "--out", str(tmp_path / "o.zarr")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "odd.npy" in err and "fits no stride" in err and "stride 4 gives (10, 9, 16)" in err
    assert not (tmp_path / "o.zarr").exists()


# ------------------------------------------------------------------ containers


def test_zarr_hdf5_and_npz_sources(data, tmp_path):
    raw = data["raw"]
    z = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    z.create_array("emb", data=raw, chunks=(5, 9, 16, 48))
    z.create_array("other", data=np.zeros(3))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("run/emb", data=np.moveaxis(raw, -1, 0), chunks=(48, 2, 9, 16), compression="gzip")
        f["run/emb"].attrs["stride"] = [4, 4, 4]
        f.create_dataset("coords", data=np.zeros((3, 3)))
    np.savez(tmp_path / "a.npz", emb=raw, labels=np.zeros(4))
    ref = stored(import_features(data["dir"] / "raw_last.npy", data["cube"], tmp_path / "ref.zarr", pca=16).path)[0]
    for src, kw in (("g.zarr", {}), ("f.h5", {"layout": "c,il,xl,t"}), ("a.npz", {})):
        fv = import_features(tmp_path / src, data["cube"], tmp_path / f"{src}.features.zarr", pca=16, **kw)
        assert np.array_equal(stored(fv.path)[0], ref), src
    with open_source_array(tmp_path / "f.h5", dataset="/run/emb") as src:
        assert src.dataset == "run/emb" and src.attrs == {"stride": [4, 4, 4]}
    np.savez_compressed(tmp_path / "c.npz", emb=raw)
    with pytest.raises(SeisfmError, match="compressed"):
        open_source_array(tmp_path / "c.npz")


def test_resume_after_cancel_gives_the_same_bytes(data, tmp_path):
    src = data["dir"] / "raw_last.npy"
    ref = import_features(src, data["cube"], tmp_path / "ref.zarr", pca=16, chunks=(4, 4, 8), model_name="m")
    stop = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done >= 5:
            stop.set()

    with pytest.raises(SeisfmCancelled, match="run again to resume"):
        import_features(
            src, data["cube"], tmp_path / "r.zarr", pca=16, chunks=(4, 4, 8), model_name="m", progress=progress, cancel=stop
        )
    partial = FeatureVolume.open(tmp_path / "r.zarr", allow_partial=True)
    assert not partial.complete and 5 <= partial.progress()[0] < partial.progress()[1]
    fv = import_features(src, data["cube"], tmp_path / "r.zarr", pca=16, chunks=(4, 4, 8), model_name="m")
    assert fv.complete
    assert np.array_equal(stored(fv.path)[0], stored(ref.path)[0])
    np.testing.assert_array_equal(fv.pca_components, ref.pca_components)
    # another file into the same store: refused, not mixed
    np.save(tmp_path / "other.npy", data["raw"] * 2)
    with pytest.raises(SeisfmError, match="not imported from this other.npy"):
        import_features(tmp_path / "other.npy", data["cube"], tmp_path / "r.zarr", pca=16, chunks=(4, 4, 8), model_name="m")


def test_info_json(data, tmp_path, capsys):
    fv = import_features(data["dir"] / "raw_last.npy", data["cube"], tmp_path / "i.zarr", pca=16, dtype="f16")
    capsys.readouterr()
    assert cli(["features", "info", str(fv.path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["grid_shape"] == list(GRID) and d["stride"] == [4, 4, 4] and d["dim"] == 16 and d["dim_in"] == 48
    assert d["dtype"] == "float16" and d["complete"] and d["size_bytes"] > 0 and d["cube"]["shape"] == list(SHAPE)
    assert d["provenance"]["layout"] == "il,xl,t,c"
    assert cli(["features", "info", str(data["store"])]) == 0
    text = capsys.readouterr().out
    assert "stride (4, 4, 4)" in text and "complete    yes" in text and "attributes" in text


def test_exported_array_refused_on_another_cube(data, tmp_path):
    export_features(data["store"], tmp_path / "e.npy")
    other = write_npy(tmp_path / "other.npy", data["amplitude"], Geometry.regular(SHAPE, first_inline=500, source="other"))
    with pytest.raises(SeisfmError, match="exported from a store of another cube"):
        import_features(tmp_path / "e.npy", other, tmp_path / "x.zarr")


# ------------------------------------------------------------------ bad input: one line, exit 2


def _fails(capsys, argv, *needles):
    capsys.readouterr()
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seisfm: error:") and err.count("\n") == 0, err
    for n in needles:
        assert n in err, err


def test_bad_input(data, tmp_path, capsys):
    cube, raw_path = str(data["cube"]), str(data["dir"] / "raw_last.npy")
    out = str(tmp_path / "o.zarr")
    # a grid that fits no stride
    np.save(tmp_path / "odd.npy", np.zeros((11, 9, 16, 4), np.float32))
    _fails(capsys, ["features", "import", str(tmp_path / "odd.npy"), "--cube", cube, "--out", out], "odd.npy", "fits no stride")
    # a wrong --layout: not the four axes, and axes that put the channels on the grid
    _fails(
        capsys, ["features", "import", raw_path, "--cube", cube, "--out", out, "--layout", "il,xl,t"], "--layout", "il, xl, t, c"
    )
    _fails(
        capsys,
        ["features", "import", raw_path, "--cube", cube, "--out", out, "--layout", "c,il,xl,t"],
        "raw_last.npy",
        "layout c,il,xl,t",
    )
    # a given stride that runs past the cube
    _fails(capsys, ["features", "import", raw_path, "--cube", cube, "--out", out, "--stride", "5"], "raw_last.npy", "stride 5")
    # files that are not arrays
    (tmp_path / "text.npy").write_text("not an array\n")
    _fails(
        capsys,
        ["features", "import", str(tmp_path / "text.npy"), "--cube", cube, "--out", out],
        "text.npy",
        "not a readable .npy",
    )
    (tmp_path / "text.h5").write_text("not hdf5\n")
    _fails(
        capsys, ["features", "import", str(tmp_path / "text.h5"), "--cube", cube, "--out", out], "text.h5", "not a readable HDF5"
    )
    (tmp_path / "text.npz").write_text("not a zip\n")
    _fails(
        capsys,
        ["features", "import", str(tmp_path / "text.npz"), "--cube", cube, "--out", out],
        "text.npz",
        "not a readable .npz",
    )
    np.save(tmp_path / "flat.npy", np.zeros((10, 9, 16), np.float32))
    _fails(capsys, ["features", "import", str(tmp_path / "flat.npy"), "--cube", cube, "--out", out], "flat.npy", "must be 4-D")
    _fails(
        capsys, ["features", "import", str(tmp_path / "missing.npy"), "--cube", cube, "--out", out], "missing.npy", "no such file"
    )
    (tmp_path / "a.csv").write_text("1,2\n")
    _fails(
        capsys,
        ["features", "import", str(tmp_path / "a.csv"), "--cube", cube, "--out", out],
        "a.csv",
        "unsupported feature array type",
    )
    # a dataset that does not exist, and a container with several candidates
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["a"] = np.zeros((10, 9, 16, 4), np.float32)
        f["b"] = np.zeros((10, 9, 16, 4), np.float32)
    _fails(
        capsys,
        ["features", "import", str(tmp_path / "f.h5"), "--cube", cube, "--out", out, "--dataset", "emb"],
        "f.h5",
        "no dataset 'emb'",
        "a (10, 9, 16, 4)",
    )
    _fails(
        capsys,
        ["features", "import", str(tmp_path / "f.h5"), "--cube", cube, "--out", out],
        "f.h5",
        "several 4-D datasets",
        "--dataset",
    )
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    _fails(capsys, ["features", "import", str(tmp_path / "empty.npz"), "--cube", cube, "--out", out], "empty.npz", "no 4-D array")
    # an output that exists: a file, a store from another source; export onto an existing file
    (tmp_path / "taken.zarr").write_text("x")
    _fails(
        capsys,
        ["features", "import", raw_path, "--cube", cube, "--out", str(tmp_path / "taken.zarr")],
        "taken.zarr",
        "not a feature store",
    )
    _fails(capsys, ["features", "import", raw_path, "--cube", cube, "--out", str(data["store"])], "embed.zarr", "other settings")
    (tmp_path / "taken.npy").write_text("x")
    _fails(capsys, ["features", "export", str(data["store"]), str(tmp_path / "taken.npy")], "taken.npy", "already exists")
    _fails(capsys, ["features", "export", str(data["store"]), str(tmp_path / "out.csv")], "out.csv", ".npy or .h5")
    _fails(
        capsys,
        ["features", "export", str(tmp_path / "nowhere.zarr"), str(tmp_path / "o.npy")],
        "nowhere.zarr",
        "no such feature store",
    )
    _fails(capsys, ["features", "info", str(tmp_path / "nowhere.zarr")], "nowhere.zarr", "no such feature store")
    # option values
    _fails(capsys, ["features", "import", raw_path, "--cube", cube, "--out", out, "--origin", "1,2"], "--origin")
    _fails(capsys, ["features", "import", raw_path, "--cube", cube, "--out", out, "--pca", "-1"], "--pca -1")
    assert not (tmp_path / "o.zarr").exists()


# ------------------------------------------------------------------ napari reader


@pytest.mark.gui
def test_napari_reader_imports_against_the_open_cube(make_napari_viewer, qtbot, data, tmp_path, reader_messages):
    from conftest import refused_with

    from napari_seisfm.plugin.features_reader import get_feature_array_reader
    from napari_seisfm.plugin.reader import get_reader

    viewer = make_napari_viewer()
    arr = tmp_path / "cluster.npy"
    np.save(arr, np.ascontiguousarray(np.moveaxis(data["raw"], -1, 0)))  # channel-first
    said = refused_with(get_feature_array_reader(str(arr)), arr, reader_messages)  # no cube open
    assert "seisfm features import" in said  # with the command to run
    viewer.open(str(data["cube"]), plugin="napari-seisfm")  # the cube reader still opens 3-D .npy cubes
    assert viewer.layers[-1].metadata["kind"] == "seismic"
    layers = viewer.open(str(arr), plugin="napari-seisfm")  # dispatched by the cube reader: 4-D is a feature array
    layer = layers[0]
    assert layer.metadata["kind"] == "features" and layer.rgb and not layer.visible
    qtbot.waitUntil(lambda: "loading" not in layer.metadata, timeout=60_000)  # imported off the GUI thread
    store = tmp_path / "cluster.features.zarr"
    assert layer.metadata["path"] == str(store)
    fv = FeatureVolume.open(store)
    assert fv.grid.stride == (4, 4, 4) and fv.provenance["layout"] == "c,il,xl,t"
    assert np.asarray(layer.scale)[0] == pytest.approx(4 * float(np.asarray(viewer.layers[0].scale)[0]))
    FeatureMatrix.open(store, fingerprint=viewer.layers[0].metadata["geometry"]["fingerprint"])  # what the dock loads
    # HDF5 through its own reader entry; a grid that does not fit is declined, never shown misaligned
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["emb"] = np.zeros((11, 9, 16, 4), np.float32)
    assert refused_with(get_feature_array_reader(str(tmp_path / "bad.h5")), tmp_path / "bad.h5", reader_messages)
    with h5py.File(tmp_path / "good.h5", "w") as f:
        f["emb"] = data["raw"]
    good = viewer.open(str(tmp_path / "good.h5"), plugin="napari-seisfm")[0]
    assert good.metadata["kind"] == "features"
    qtbot.waitUntil(lambda: "loading" not in good.metadata, timeout=60_000)
    assert get_reader(str(tmp_path / "good.h5")) is None  # not the cube reader's


@pytest.mark.gui
def test_click_to_map_dock_on_an_imported_store(make_napari_viewer, qtbot, data, tmp_path):
    """An `embed` store and its export -> import twin give the dock the same map for the same clicks."""
    from napari_seisfm.display import cube_layer
    from napari_seisfm.plugin.widgets.click_to_map import NEGATIVE, POSITIVE, SIMILARITY, ClickToMapWidget

    export_features(data["store"], tmp_path / "e.h5")
    imported = import_features(tmp_path / "e.h5", data["cube"], tmp_path / "i.zarr").path
    maps = []
    for store in (data["store"], imported):
        viewer = make_napari_viewer()
        cube = open_cube(data["cube"])
        image, kwargs, _ = cube_layer(cube, name="seismic")
        viewer.add_image(image, **kwargs)
        widget = ClickToMapWidget(viewer)
        widget.load_features(str(store))
        qtbot.waitUntil(lambda: widget.features is not None, timeout=10_000)  # noqa: B023
        g = cube.geometry
        viewer.layers[POSITIVE].add([g.ilines[8], g.xlines[12], g.samples[32]])
        viewer.layers[NEGATIVE].add([g.ilines[32], g.xlines[28], g.samples[8]])
        qtbot.waitUntil(
            lambda: widget.result is not None and not widget.map_running and widget.session.is_current(widget.result),  # noqa: B023
            timeout=10_000,
        )
        maps.append(np.asarray(viewer.layers[SIMILARITY].data))
    assert maps[0].shape == GRID
    assert np.abs(maps[0] - maps[1]).max() < 0.02
