"""Feature-store damage that used to pass unnoticed (issue 23): a lost or changed PCA basis (D2), single-bit
flips in chunks (D4: CRC-32C checksums on new stores, verified by `seisfm check` and every read), and the
one-line messages around them. Real stores written by `seisfm embed` on a small synthetic cube."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_seisfm.cli import main as cli
from napari_seisfm.errors import SeisfmError
from napari_seisfm.search import FeatureMatrix
from napari_seisfm.store.volume import FeatureVolume, StoreWarning

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)


def lines(text: str) -> list[str]:
    return [
        ln
        for ln in text.replace("\r", "\n").splitlines()
        if ln.strip() and "chunk/s" not in ln and "it/s" not in ln and not ln.startswith(("embed:", "seisfm: warning"))
    ]


def one_line_error(capsys, *argv, match: str) -> str:
    assert cli([str(a) for a in argv]) == 2
    err = list(lines(capsys.readouterr().err))
    assert len(err) == 1 and err[0].startswith("seisfm: error:") and match in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A cube and its store (attributes model, PCA basis fitted: the CLI defaults), stride 4: 8^3 grid, 8 chunks."""
    d = tmp_path_factory.mktemp("integrity")
    assert cli(["synth", str(d / "c.npy"), "--size", "32"]) == 0
    assert cli(["embed", str(d / "c.npy"), "--out", str(d / "s.zarr"), "--stride", "4"]) == 0
    # 4^3 store chunks so that the grid has several (the CLI uses 16^3)
    from napari_seisfm.extract import extract_features

    extract_features(d / "c.npy", d / "m.zarr", stride=2, chunks=(8, 8, 8))
    return d


def files(store: Path, array: str) -> list[Path]:
    return sorted(p for p in (store / array).rglob("*") if p.is_file() and p.name != "zarr.json")


def tree(store: Path) -> dict:
    return {p.relative_to(store): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ D2: the PCA basis


@pytest.mark.parametrize("array", ["pca_components", "pca_mean"])
def test_a_deleted_basis_chunk_is_damage_and_repair_refuses(made, tmp_path, capsys, array):
    store = tmp_path / "s.zarr"
    shutil.copytree(made / "s.zarr", store)
    assert FeatureVolume.open(store).pca_components is not None
    for f in files(store, array):
        f.unlink()
    # `check` used to say "8 chunks sound, complete" (the basis read as zeros); repair then wrote
    # all-invalid or wrong vectors and called the store sound
    one_line_error(capsys, "check", store, match=f"damaged PCA basis ({array} chunk")
    before = tree(store)
    one_line_error(capsys, "check", store, "--repair", "--cube", made / "c.npy", match="cannot be repaired in place")
    assert tree(store) == before  # refused: nothing touched
    with pytest.raises(SeisfmError, match="damaged PCA basis"):
        FeatureMatrix.open(store)
    one_line_error(
        capsys, "search", store, "--pos", "8,8,8", "--coords", "cube", "--out", tmp_path / "m.npy", match="damaged PCA basis"
    )


def test_a_changed_basis_is_found_by_its_hash_and_a_flipped_one_by_its_checksum(made, tmp_path, capsys):
    import zarr

    store = tmp_path / "h.zarr"
    shutil.copytree(made / "s.zarr", store)
    g = zarr.open_group(str(store), mode="r+")
    comps = np.asarray(g["pca_components"][...])
    comps[0, 0] += 0.25  # a well-formed chunk with other values: only the recorded hash tells
    g["pca_components"][...] = comps
    one_line_error(capsys, "check", store, match="differ from those recorded at creation")
    shutil.rmtree(store)
    shutil.copytree(made / "s.zarr", store)
    f = files(store, "pca_mean")[0]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x10
    f.write_bytes(bytes(data))
    one_line_error(capsys, "check", store, match="pca_mean unreadable (CRC-32C checksum mismatch)")


def test_basis_arrays_gone_while_the_store_says_reduced(made, tmp_path, capsys):
    store = tmp_path / "r.zarr"
    shutil.copytree(made / "m.zarr", store)
    fv = FeatureVolume.open(store)
    import zarr

    g = zarr.open_group(str(store), mode="r+")
    g.attrs["dim_in"] = fv.dim + 7  # what a store reduced from wider embeddings says
    shutil.rmtree(store / "pca_mean")
    shutil.rmtree(store / "pca_components")
    one_line_error(capsys, "check", store, match="no basis arrays")


# ------------------------------------------------------------------ D4: checksums


def test_new_stores_carry_crc32c_checksums(made):
    import zarr

    g = zarr.open_group(str(made / "s.zarr"), mode="r")
    assert g.attrs["checksums"] == "crc32c"
    for name in ("embeddings", "valid", "done", "pca_mean", "pca_components"):
        codecs = [c.to_dict()["name"] for c in g[name].metadata.codecs]
        assert codecs[-1] == "crc32c", (name, codecs)
    assert FeatureVolume.open(made / "s.zarr").checksums


def test_every_single_bit_flip_in_a_chunk_is_found_and_repaired(made, tmp_path, capsys):
    """12 flips at seeded random bits of embeddings and valid chunks: before the checksums 12 of 12 went
    unnoticed by `check` and `search`; now each is a damaged chunk, read as invalid, and repaired bytewise."""
    ref = FeatureVolume.open(made / "m.zarr")
    ref_v, ref_ok = ref.load()
    rng = np.random.default_rng(23)
    emb, val = files(made / "m.zarr", "embeddings"), files(made / "m.zarr", "valid")
    assert len(emb) == 8 and len(val) == 8
    found = 0
    for trial in range(12):
        store = tmp_path / f"f{trial}.zarr"
        shutil.copytree(made / "m.zarr", store)
        array = "embeddings" if trial % 3 else "valid"
        victim = store / files(made / "m.zarr", array)[int(rng.integers(8))].relative_to(made / "m.zarr")
        data = bytearray(victim.read_bytes())
        pos = int(rng.integers(len(data)))
        data[pos] ^= 1 << int(rng.integers(8))
        victim.write_bytes(bytes(data))
        assert cli(["check", str(store)]) == 2
        out = capsys.readouterr().out
        assert out.count("chunk (") == 1 and f"{array} " in out, (trial, pos, out)
        found += "CRC-32C checksum mismatch" in out
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            v, ok = FeatureVolume.open(store).load()
        assert any(issubclass(w.category, StoreWarning) for w in caught)
        assert ok.sum() < ref_ok.sum()  # the flipped chunk's points are invalid, not silently other values
        assert cli(["check", str(store), "--repair", "--cube", str(made / "c.npy")]) == 0
        capsys.readouterr()
        v, ok = FeatureVolume.open(store).load()
        assert np.array_equal(v, ref_v) and np.array_equal(ok, ref_ok)
        shutil.rmtree(store)
    assert found == 12


def test_stores_without_checksums_keep_working(made, tmp_path, capsys, monkeypatch):
    """Stores written before the checksums (zstd only) open, search, resume and check as before."""
    from zarr.codecs import ZstdCodec

    from napari_seisfm.store import volume as features

    monkeypatch.setattr(features, "_compressors", lambda: (ZstdCodec(level=0, checksum=False),))
    old = tmp_path / "old.zarr"
    assert cli(["embed", str(made / "c.npy"), "--out", str(old), "--stride", "4"]) == 0
    monkeypatch.undo()
    capsys.readouterr()
    import zarr

    g = zarr.open_group(str(old), mode="r+")
    assert [c.to_dict()["name"] for c in g["embeddings"].metadata.codecs][-1] == "zstd"
    del g.attrs["checksums"], g.attrs["pca_sha256"]  # as an older version wrote them
    fv = FeatureVolume.open(old)
    assert not fv.checksums and fv.pca_components is not None
    new_v, new_ok = FeatureVolume.open(made / "s.zarr").load()
    v, ok = fv.load()
    assert np.array_equal(v, new_v) and np.array_equal(ok, new_ok)  # same vectors whatever the codec chain
    assert cli(["check", str(old)]) == 0
    assert "no checksums in this older store" in capsys.readouterr().out
    assert cli(["search", str(old), "--pos", "8,8,8", "--coords", "cube", "--top", "0", "--out", str(tmp_path / "m.npy")]) == 0


# ------------------------------------------------------------------ messages


@pytest.mark.parametrize("array", ["embeddings", "valid", "done", "pca_mean"])
def test_garbled_array_metadata_names_the_array(made, tmp_path, capsys, array):
    store = tmp_path / "g.zarr"
    shutil.copytree(made / "s.zarr", store)
    (store / array / "zarr.json").write_text('{"shape": [1, 2], garbled')
    err = one_line_error(capsys, "check", store, match=f"array {array!r}")
    assert "'JSONDecodeError'" not in err  # it used to name the exception as if it were the array
