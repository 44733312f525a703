"""The survey library: real usearch indexes over real feature stores made with `seisfm synth` + `seisfm embed`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.errors import SeisfmError
from napari_seisfm.search import FeatureMatrix
from napari_seisfm.search.library import CONNECTIVITY, Library, add_stores, search_library
from napari_seisfm.store.volume import FeatureVolume

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

pytest.importorskip("usearch")

CLICK = (1020.0, 2020.0, 80.0)  # inline, crossline, ms: inside both cubes, on a grid point of both


def one_line_error(capsys, *argv, match=None) -> str:
    assert cli(list(argv)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "it/s]" not in line]
    assert len(lines) == 1 and lines[0].startswith("seisfm: error:"), err
    if match:
        assert match in err, err
    return err


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Cube A (40^3, inlines 1000-1039) and cube B = A's inlines 1008-1039 (a shifted survey over the same
    geology), both embedded at stride 4: grid point (i, x, t) of A is (i - 2, x, t) of B."""
    d = tmp_path_factory.mktemp("library")
    assert cli(["synth", str(d / "a.npy"), "--size", "40"]) == 0
    a = np.load(d / "a.npy")
    geo = json.loads((d / "a.npy.json").read_text())
    np.save(d / "b.npy", a[8:])
    geo.update(shape=[32, 40, 40], ilines=[1008, 1039, 1], source="b")
    geo.pop("fingerprint", None)
    (d / "b.npy.json").write_text(json.dumps(geo))
    for name in ("a", "b"):
        assert cli(["embed", str(d / f"{name}.npy"), "--out", str(d / f"{name}.zarr"), "--stride", "4"]) == 0
    return d


def test_a_click_in_cube_a_finds_the_same_place_in_cube_b(stores, tmp_path, capsys):
    lib = tmp_path / "lib"
    assert cli(["library", "add", str(stores / "a.zarr"), str(stores / "b.zarr"), "--library", str(lib)]) == 0
    capsys.readouterr()
    info = Library.open(lib).info()
    fa, fb = FeatureMatrix.open(stores / "a.zarr"), FeatureMatrix.open(stores / "b.zarr")
    assert info["vectors"] == int(fa.valid.sum() + fb.valid.sum())
    assert (
        cli(
            [
                "library",
                "search",
                "--from",
                str(stores / "a.zarr"),
                "--pos",
                ",".join(map(str, CLICK)),
                "--library",
                str(lib),
                "--top",
                "5",
                "--json",
            ]
        )
        == 0
    )
    matches = json.loads(capsys.readouterr().out)
    assert len(matches) == 5
    assert matches[0]["store"].endswith("a.zarr") and tuple(matches[0]["survey"]) == CLICK  # itself
    in_b = [m for m in matches if m["store"].endswith("b.zarr")]
    assert in_b and tuple(in_b[0]["survey"]) == CLICK and tuple(in_b[0]["grid_index"]) == (3, 5, 5)
    assert in_b[0]["score"] > 0.95
    scores = [m["score"] for m in matches]
    assert scores == sorted(scores, reverse=True)


def test_library_search_agrees_with_exact_search(stores, tmp_path):
    """The HNSW answer against brute force over both stores (cosine of the stored int8 vectors). Built with one
    thread: a graph built in parallel differs from run to run, and an approximate search then missed the
    30th neighbour in about one run of four (recall is measured in benchmarks/bench_library.py)."""
    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr", stores / "b.zarr"], threads=1)
    fa = FeatureMatrix.open(stores / "a.zarr")
    got = search_library(lib, fa, [CLICK], top=30, radius=0)  # the raw nearest vectors
    q = fa.vector(fa.to_grid(CLICK, "survey"))
    scores = []
    for fm in (fa, FeatureMatrix.open(stores / "b.zarr")):
        v = fm.vectors[fm.valid].astype(np.float64)
        qq = np.clip(np.rint(q * 127 / np.abs(q).max()), -127, 127)
        scores.append(v @ qq / np.linalg.norm(v, axis=1) / np.linalg.norm(qq))
    best = np.sort(np.concatenate(scores))[::-1][:30]
    np.testing.assert_allclose([m.score for m in got], best, atol=1e-4)


def test_a_coarser_index_stride_keeps_every_nth_grid_point(stores, tmp_path):
    lib = tmp_path / "lib"
    ((_, n),) = add_stores(lib, [stores / "a.zarr"], step=2)
    fa = FeatureMatrix.open(stores / "a.zarr")
    assert n == int(fa.valid.reshape(fa.shape)[::2, ::2, ::2].sum())
    got = search_library(lib, fa, [CLICK], top=50)  # grid (5, 5, 5) is odd: not indexed
    assert all(all(g % 2 == 0 for g in m.grid_index) for m in got)


def test_adding_a_store_twice_is_a_no_op(stores, tmp_path, capsys):
    lib = tmp_path / "lib"
    assert cli(["library", "add", str(stores / "a.zarr"), "--library", str(lib)]) == 0
    size = Library.open(lib).size
    assert Library.open(lib)._index.connectivity == CONNECTIVITY == 32  # the denser graph (recall at 3 M)
    capsys.readouterr()
    assert cli(["library", "add", str(stores / "a.zarr"), str(stores / "a.zarr"), "--library", str(lib)]) == 0
    assert "already in the library" in capsys.readouterr().out
    assert Library.open(lib).size == size
    assert cli(["library", "info", str(lib)]) == 0
    assert "a.zarr" in capsys.readouterr().out


def test_a_store_re_embedded_with_other_settings_is_replaced(stores, tmp_path, capsys):
    lib, store = tmp_path / "lib", tmp_path / "a.zarr"
    assert cli(["embed", str(stores / "a.npy"), "--out", str(store), "--stride", "4"]) == 0
    assert cli(["library", "add", str(store), str(stores / "b.zarr"), "--library", str(lib)]) == 0
    b_size = FeatureVolume.open(stores / "b.zarr").grid.size
    assert cli(["embed", str(stores / "a.npy"), "--out", str(store), "--stride", "8", "--overwrite"]) == 0
    capsys.readouterr()
    assert cli(["library", "add", str(store), "--library", str(lib)]) == 0
    assert f"{FeatureVolume.open(store).grid.size} vectors added" in capsys.readouterr().out
    library = Library.open(lib)
    entries = [e for e in library.stores if e["path"] == str(store.resolve())]
    assert len(entries) == 1 and entries[0]["stride"] == [8, 8, 8]
    assert library.size == FeatureVolume.open(store).grid.size + b_size  # the stride-4 vectors are gone
    fv = FeatureVolume.open(store)
    flat = int(np.ravel_multi_index((1, 1, 1), fv.grid.shape))
    hits = library.search(fv.decode(fv.load()[0][flat][None])[0], top=3, radius=0, seabed=True)  # the raw nearest
    assert (str(store.resolve()), (1, 1, 1)) in [(h.store, h.grid_index) for h in hits]  # decoded on the new grid


def test_default_library_sits_beside_the_store(stores, tmp_path):
    for name in ("a", "b"):
        shutil.copytree(stores / f"{name}.zarr", tmp_path / f"{name}.zarr")
    assert cli(["library", "add", str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")]) == 0
    assert (tmp_path / "seisfm-library" / "vectors.usearch").is_file()
    assert cli(["library", "search", "--from", str(tmp_path / "b.zarr"), "--pos", "1020,2020,80"]) == 0


def test_a_store_removed_from_disk_is_named(stores, tmp_path, capsys):
    copy = tmp_path / "b.zarr"
    shutil.copytree(stores / "b.zarr", copy)
    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr", copy])
    shutil.rmtree(copy)
    one_line_error(
        capsys,
        "library",
        "search",
        "--from",
        str(stores / "a.zarr"),
        "--pos",
        "1020,2020,80",
        "--library",
        str(lib),
        match=f"store {copy} listed in the library is missing from disk",
    )
    assert cli(["library", "info", str(lib)]) == 0
    assert "MISSING" in capsys.readouterr().out


def test_a_store_of_another_model_is_refused(stores, tmp_path):
    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr"])
    man = json.loads((lib / "library.json").read_text())
    man["model"] = "another-model"
    (lib / "library.json").write_text(json.dumps(man))
    with pytest.raises(SeisfmError, match="does not match the library"):
        add_stores(lib, [stores / "b.zarr"])
    with pytest.raises(SeisfmError, match="does not match the library"):
        search_library(lib, stores / "b.zarr", [CLICK])


@pytest.mark.parametrize(
    "argv, match",
    [
        (["library", "search", "--from", "{a}", "--pos", "1,2", "--library", "{lib}"], "expected three numbers"),
        (["library", "search", "--from", "{a}", "--library", "{lib}"], "at least one --pos"),
        (["library", "search", "--from", "{a}", "--pos", "1020,2020,80", "--top", "0", "--library", "{lib}"], "--top"),
        (["library", "search", "--from", "{a}", "--pos", "5000,2020,80", "--library", "{lib}"], "outside the volume"),
        (["library", "search", "--from", "{a}", "--pos", "1020,2020,80", "--library", "{tmp}/none"], "no survey library here"),
        (["library", "add", "{tmp}/missing.zarr", "--library", "{lib}"], "no such feature store"),
        (["library", "add", "{a}", "--stride", "0", "--library", "{lib}"], "--stride"),
        (["library", "add", "{a}", "--library", "{a}"], "not a survey library"),
        (["library", "info", "{tmp}/none"], "no survey library here"),
    ],
)
def test_bad_input_is_one_line(stores, tmp_path, capsys, argv, match):
    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr"])
    argv = [x.format(a=stores / "a.zarr", lib=lib, tmp=tmp_path) for x in argv]
    one_line_error(capsys, *argv, match=match)


def test_a_damaged_seabed_band_is_named(stores, tmp_path, capsys):
    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr"])
    (lib / Library.open(lib).stores[0]["seabed"]["file"]).write_bytes(b"garbage")
    one_line_error(
        capsys,
        "library",
        "search",
        "--from",
        str(stores / "a.zarr"),
        "--pos",
        ",".join(map(str, CLICK)),
        "--library",
        str(lib),
        match="unreadable seabed band",
    )


def test_a_damaged_index_is_named(stores, tmp_path, capsys):
    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr"])
    (lib / "vectors.usearch").write_bytes(b"garbage" * 10)
    one_line_error(capsys, "library", "info", str(lib), match="vectors.usearch")


def test_one_entry_per_body(stores, tmp_path):
    """The dock's and the CLI's default: the nearest vectors grouped into connected bodies per cube, each listed
    once at its best hit. Checked against scipy's 26-connected labelling of the same candidates on each grid."""
    from scipy import ndimage

    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr", stores / "b.zarr"], threads=1)
    library = Library.open(lib)
    fa = FeatureMatrix.open(stores / "a.zarr")
    click = (1020.0, 2020.0, 128.0)  # below the seabed band
    got = search_library(library, fa, [click], top=20)
    pool = library.last["candidates"]
    raw = search_library(lib, fa, [click], top=pool, radius=0, seabed=True)  # the same nearest vectors
    assert len(raw) == pool
    bands = library.seabed_bands()
    by_path = {e["path"]: e for e in library.stores}
    bodies = []  # (best score, store, best grid index, size) from ndimage.label
    for path, entry in by_path.items():
        hits = [m for m in raw if m.store == path]
        band = bands[entry["id"]]
        hits = [m for m in hits if m.grid_index[2] >= band[m.grid_index[0], m.grid_index[1]]]
        grid = np.zeros(entry["grid_shape"], bool)
        for m in hits:
            grid[m.grid_index] = True
        labels, _ = ndimage.label(grid, structure=np.ones((3, 3, 3)))
        for lab in np.unique([labels[m.grid_index] for m in hits]):
            members = [m for m in hits if labels[m.grid_index] == lab]
            bodies.append((members[0].score, path, members[0].grid_index, len(members)))
    bodies.sort(key=lambda b: -b[0])
    assert len(got) == min(20, len(bodies)) > 3
    assert [(m.store, m.grid_index, m.hits) for m in got] == [(b[1], b[2], b[3]) for b in bodies[: len(got)]]
    assert (
        sum(m.hits for m in got) + library.last["seabed_left_out"] <= pool and max(m.hits for m in got) > 1
    )  # neighbours folded in
    assert got[0].store.endswith("a.zarr") and tuple(got[0].survey) == click and got[0].score > 0.999  # itself first
    assert [m.rank for m in got] == list(range(1, len(got) + 1))
    scores = [m.score for m in got]
    assert scores == sorted(scores, reverse=True)
    assert len({m.store for m in got}) == 2  # both cubes in the list


def _truth_seabed(size=40):
    """The seabed sample per trace of `seisfm synth --size 40` (seed 0): the first sample below the water."""
    from napari_seisfm.synthetic import make_survey

    survey = make_survey((size,) * 3, seed=0)
    return survey, (survey.horizons > 0).argmax(axis=2)


def test_the_seabed_band_follows_the_seabed(stores, tmp_path):
    survey, seabed = _truth_seabed()
    np.testing.assert_array_equal(np.load(stores / "a.npy"), survey.amplitude)  # the fixture's cube
    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr"])
    entry = Library.open(lib).stores[0]
    band = np.load(lib / entry["seabed"]["file"])
    fv = FeatureVolume.open(stores / "a.zarr")
    assert band.shape == fv.grid.shape[:2] and entry["seabed"]["rows"] == [int(band.min()), int(band.max())]
    step = fv.grid.stride[2]
    truth = seabed[:: fv.grid.stride[0], :: fv.grid.stride[1]]  # the grid columns' traces
    below = band * step  # the first sample kept in each column
    assert (below > truth).all()  # the water, the seabed sample and what lies right under it are in the band
    assert (below <= truth + 2 * step + 4).all()  # and no more than about two grid steps below it


def _shallow_click(library, fa, store):
    """A click one grid row under the band whose nearest places (seabed kept) reach into the band."""
    band = library.seabed_bands()[library.stores[0]["id"]]
    for i in range(0, fa.shape[0], 2):
        for j in range(0, fa.shape[1], 2):
            k = int(band[i, j])
            if k >= fa.shape[2]:
                continue
            click = fa.grid_to_survey((i, j, k))
            kept = search_library(library, fa, [click], top=12, seabed=True)
            if any(m.store == store and m.grid_index[2] < band[m.grid_index[:2]] for m in kept):
                return click, kept
    raise AssertionError("no click under the band finds the seabed: the test cube lost its seabed")


def test_hits_in_the_seabed_band_are_left_out_unless_asked_for(stores, tmp_path, capsys):
    lib = tmp_path / "lib"
    add_stores(lib, [stores / "a.zarr"], threads=1)
    library = Library.open(lib)
    fa = FeatureMatrix.open(stores / "a.zarr")
    store = library.stores[0]["path"]
    band = library.seabed_bands()[library.stores[0]["id"]]
    click, kept = _shallow_click(library, fa, store)
    got = search_library(library, fa, [click], top=12)
    assert got and not any(m.grid_index[2] < band[m.grid_index[:2]] for m in got)
    assert library.last["seabed_left_out"] > 0 and not library.last["clicked_in_seabed_band"]
    # the CLI says so, and --keep-seabed lists them
    argv = [
        "library",
        "search",
        "--from",
        str(stores / "a.zarr"),
        "--pos",
        ",".join(f"{v:g}" for v in click),
        "--library",
        str(lib),
        "--top",
        "12",
    ]
    assert cli(argv) == 0
    assert "in the seabed band left out (--keep-seabed lists them)" in capsys.readouterr().out
    assert cli([*argv, "--keep-seabed", "--json"]) == 0
    assert [tuple(m["grid_index"]) for m in json.loads(capsys.readouterr().out)] == [m.grid_index for m in kept]
    # a click in the band itself: the user is after the seabed, so it is searched
    top_of_band = fa.grid_to_survey((5, 5, 0))
    got = search_library(library, fa, [top_of_band], top=12)
    assert library.last["clicked_in_seabed_band"] and got[0].grid_index == (5, 5, 0)


def test_a_store_whose_cube_is_away_gets_its_band_when_added_again(stores, tmp_path, capsys):
    d = tmp_path / "away"
    d.mkdir()
    for suffix in (".npy", ".npy.json"):
        shutil.copy(stores / f"a{suffix}", d / f"c{suffix}")
    assert cli(["embed", str(d / "c.npy"), "--out", str(d / "c.zarr"), "--stride", "4"]) == 0
    (d / "c.npy").rename(d / "c.moved")
    lib = tmp_path / "lib"
    capsys.readouterr()
    assert cli(["library", "add", str(d / "c.zarr"), "--library", str(lib)]) == 0
    assert f"no seabed band: its cube ({d / 'c.npy'}) is not on this machine" in capsys.readouterr().out
    assert Library.open(lib).seabed_bands() == {0: None}
    (d / "c.moved").rename(d / "c.npy")
    assert cli(["library", "add", str(d / "c.zarr"), "--library", str(lib)]) == 0
    assert "already in the library, skipped; seabed band picked from" in capsys.readouterr().out
    again = Library.open(lib)
    np.testing.assert_array_equal(again.seabed_bands()[0], np.load(_band_file(stores, tmp_path)))
    assert cli(["library", "remove", str(d / "c.zarr"), "--library", str(lib)]) == 0
    assert not list(lib.glob("seabed-*.npy"))  # its band goes with it


def _band_file(stores, tmp_path):
    ref = tmp_path / "ref"
    add_stores(ref, [stores / "a.zarr"])
    return ref / Library.open(ref).stores[0]["seabed"]["file"]


def test_cube_paths_are_absolute_so_a_match_opens_from_anywhere(stores, tmp_path, monkeypatch):
    d = tmp_path / "work"
    d.mkdir()
    for suffix in (".npy", ".npy.json"):
        shutil.copy(stores / f"b{suffix}", d / f"rel{suffix}")
    monkeypatch.chdir(d)
    assert cli(["embed", "rel.npy", "--out", "rel.zarr", "--stride", "4"]) == 0  # relative paths, as typed
    assert FeatureVolume.open(d / "rel.zarr").cube_summary["source"] == str((d / "rel.npy").resolve())
    assert cli(["library", "add", "rel.zarr", str(stores / "a.zarr"), "--library", "lib"]) == 0
    monkeypatch.chdir(tmp_path)  # somewhere else
    fa = FeatureMatrix.open(stores / "a.zarr")
    got = search_library(d / "lib", fa, [(1020.0, 2020.0, 128.0)], top=20)
    rel = [m for m in got if m.store.endswith("rel.zarr")]
    assert rel and all(m.cube == str((d / "rel.npy").resolve()) for m in rel)
    assert all(m.cube == str((stores / "a.npy").resolve()) for m in got if m.store.endswith("a.zarr"))


def test_an_older_store_with_a_relative_cube_path_is_found_beside_it(stores, tmp_path, monkeypatch):
    """Stores embedded before paths were resolved say `rel.npy`; the library looks beside the store."""
    import zarr

    d = tmp_path / "old"
    d.mkdir()
    for suffix in (".npy", ".npy.json"):
        shutil.copy(stores / f"b{suffix}", d / f"rel{suffix}")
    shutil.copytree(stores / "b.zarr", d / "rel.zarr")
    group = zarr.open_group(str(d / "rel.zarr"), mode="r+")
    group.attrs["cube_geometry"] = {**group.attrs["cube_geometry"], "source": "rel.npy"}  # as an older embed wrote it
    lib = tmp_path / "lib"
    add_stores(lib, [d / "rel.zarr"])
    entry = Library.open(lib).stores[0]
    assert entry["cube"] == str((d / "rel.npy").resolve()) and entry["seabed"]["file"]
    man = json.loads((lib / "library.json").read_text())
    del man["stores"][0]["cube"]  # a library built before cube paths were kept
    (lib / "library.json").write_text(json.dumps(man))
    monkeypatch.chdir(tmp_path)
    fm = FeatureMatrix.open(d / "rel.zarr")
    got = search_library(lib, fm, [(1020.0, 2020.0, 128.0)], top=3)
    assert got and all(m.cube == str((d / "rel.npy").resolve()) for m in got)
    (d / "rel.npy").unlink()  # gone: the path stays as recorded, and the dock says it is not here
    assert search_library(lib, fm, [(1020.0, 2020.0, 128.0)], top=1)[0].cube == "rel.npy"


def test_remove_a_store_even_once_it_is_gone_from_disk(stores, tmp_path, capsys):
    import shutil

    lib = tmp_path / "lib"
    b = tmp_path / "b.zarr"
    shutil.copytree(stores / "b.zarr", b)
    add_stores(lib, [stores / "a.zarr", b])
    fa = FeatureMatrix.open(stores / "a.zarr")
    shutil.rmtree(b)  # the store went: search refuses, naming it and the way out
    one_line_error(
        capsys,
        "library",
        "search",
        "--from",
        str(stores / "a.zarr"),
        "--pos",
        ",".join(map(str, CLICK)),
        "--library",
        str(lib),
        match="library remove",
    )
    assert cli(["library", "remove", str(b), "--library", str(lib)]) == 0
    assert "removed" in capsys.readouterr().out
    after = Library.open(lib)
    assert after.size == int(fa.valid.sum()) and [s["path"] for s in after.stores] == [str((stores / "a.zarr").resolve())]
    got = search_library(lib, fa, [CLICK], top=10)
    assert got and all(m.store.endswith("a.zarr") for m in got)
    one_line_error(capsys, "library", "remove", str(b), "--library", str(lib), match="not in the library")
    assert cli(["library", "remove", str(stores / "a.zarr"), "--library", str(lib)]) == 0  # empty again
    assert Library.open(lib).size == 0
    add_stores(lib, [stores / "a.zarr"])  # and usable again
    assert Library.open(lib).size == int(fa.valid.sum())
