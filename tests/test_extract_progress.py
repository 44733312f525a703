"""Progress and cancel below one chunk (issue 10 #5, issue 21): a cube of one chunk embedded by a real ViT
(the bundled micro model) or by the default attribute embedder reports within the chunk and stops at the
next step (a batch, a stage), leaving a store that is marked incomplete and that a resume completes with
the vectors of an uninterrupted run; a run stopped while fitting the PCA basis keeps the sample chunks it
embedded and resumes from them."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_seisfm import progress as progress_
from napari_seisfm.cube import Cube
from napari_seisfm.encoders.registry import get_embedder
from napari_seisfm.errors import SeisfmCancelled
from napari_seisfm.extract import extract_features
from napari_seisfm.store.volume import FeatureVolume
from napari_seisfm.synthetic import make_survey

MODEL = "seisfm-micro-2.5d"


@pytest.fixture(scope="module")
def one_chunk():
    """The micro model (window 32: one store chunk is 8 x 8 x 8 grid points at stride 4), a 32^3 cube
    (one chunk), and a counter of the encoder's forward passes (a torch hook on its final norm)."""
    emb = get_embedder(MODEL, device="cpu", batch_size=2)
    passes = []
    emb.encoder.norm.register_forward_hook(lambda *_: passes.append(1))
    cube = Cube.from_array(make_survey((32, 32, 32), seed=5).amplitude)
    return emb, cube, passes


def test_one_chunk_reports_within_the_chunk(one_chunk, tmp_path):
    emb, cube, passes = one_chunk
    passes.clear()
    reports = []
    fv = extract_features(cube, tmp_path / "full.zarr", embedder=emb, pca=0, progress=lambda d, t: reports.append((d, t)))
    assert fv.complete and fv.progress() == (1, 1)  # one chunk
    assert len(passes) > 4  # the chunk is several batches
    assert len(reports) > 2
    assert reports[0] == (0, 1) and reports[-1] == (1, 1)
    done = [d for d, _ in reports]
    assert all(0 < d < 1 for d in done[1:-1]) and done == sorted(done)
    assert getattr(progress_._local, "hook", None) is None  # the step hook is removed after the call


def test_cancel_after_the_first_report_stops_between_batches_and_resumes(one_chunk, tmp_path):
    emb, cube, passes = one_chunk
    reference = extract_features(cube, tmp_path / "ref.zarr", embedder=emb, pca=0)
    n_full = len(passes)
    passes.clear()
    out = tmp_path / "c.zarr"
    stop = threading.Event()

    def progress(done, total):
        if done > 0:  # the first report from inside the chunk
            stop.set()

    with pytest.raises(SeisfmCancelled, match="stopped after 0/1 chunks; run again to resume"):
        extract_features(cube, out, embedder=emb, pca=0, progress=progress, cancel=stop)
    assert len(passes) == 1  # one batch of forward passes, then stopped (the whole chunk is more)
    assert n_full > 4 * len(passes)
    partial = FeatureVolume.open(out, allow_partial=True)
    assert not partial.complete and partial.progress() == (0, 1)
    with pytest.raises(Exception):  # noqa: B017
        FeatureVolume.open(out)  # never presented as complete
    fv = extract_features(cube, out, embedder=emb, pca=0)
    assert fv.complete
    a, ok_a = fv.load()
    b, ok_b = reference.load()
    np.testing.assert_array_equal(ok_a, ok_b)
    np.testing.assert_array_equal(a, b)


def test_cancel_while_fitting_pca_between_batches(one_chunk, tmp_path):
    emb, cube, passes = one_chunk
    passes.clear()
    with pytest.raises(SeisfmCancelled, match="fitting the PCA basis"):
        extract_features(cube, tmp_path / "p.zarr", embedder=emb, pca=16, cancel=lambda: len(passes) >= 1)
    assert len(passes) == 1


@pytest.mark.parametrize("flat", [0, 1])
def test_vit_embeds_a_2d_line_without_mirroring_it(one_chunk, flat):
    """A one-line cube: the ViT gets the line itself (no halo along the missing axis) and returns
    exactly the vectors of the line mirrored into 2 * halo + 1 copies."""
    from napari_seisfm.extract import _BlockReader, read_halo
    from napari_seisfm.store.grid import GridSpec

    emb, _, _ = one_chunk
    shape = [40, 40, 48]
    shape[flat] = 1
    line = Cube.from_array(make_survey((40, 40, 48), seed=6).amplitude[(slice(None),) * flat + (slice(0, 1),)])
    assert line.shape == tuple(shape)
    grid = GridSpec.for_cube(line.shape, 4)
    halo = read_halo(emb, line.shape)
    assert halo[flat] == 0 and halo[2] == emb.halo[2]
    norm = {"mean": 0.0, "std": 1.0}
    region = tuple(slice(0, n) for n in grid.shape)
    native = _BlockReader(line, grid, halo, norm).block(region)
    mirrored = _BlockReader(line, grid, emb.halo, norm).block(region)
    assert native.shape[flat] == 1 and mirrored.shape[flat] == 2 * emb.halo[flat] + 1
    np.testing.assert_allclose(emb.embed_block(native, grid.stride), emb.embed_block(mirrored, grid.stride), rtol=1e-5, atol=1e-5)


class _Counting:
    """An embedder that counts its finished ``embed_block`` calls (the attribute embedder underneath)."""

    def __init__(self):
        from napari_seisfm.encoders.attributes import AttributeEmbedder

        self.inner = AttributeEmbedder()
        self.card, self.calls = self.inner.card, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_block(self, block, stride):
        out = self.inner.embed_block(block, stride)
        self.calls.append(1)
        return out


def test_attribute_embedder_reports_and_stops_within_its_one_chunk(tmp_path):
    """The default embedder: a 64^3 cube at stride 4 is one chunk; progress moves inside it and Cancel is
    heard at the next stage, before the chunk is done; a rerun completes the same store."""
    cube = Cube.from_array(make_survey((64, 64, 64), seed=8).amplitude)
    reference = extract_features(cube, tmp_path / "ref.zarr", pca=0)
    assert reference.progress() == (1, 1)
    reports = []
    extract_features(cube, tmp_path / "all.zarr", pca=0, progress=lambda d, t: reports.append(d))
    inside = [d for d in reports if 0 < d < 1]
    assert len(inside) >= 5 and inside == sorted(inside)  # the stages of the one chunk
    stop = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if 0 < done < 1:
            stop.set()  # Cancel pressed at the first report from inside the chunk

    out = tmp_path / "c.zarr"
    with pytest.raises(SeisfmCancelled, match="stopped after 0/1 chunks; run again to resume"):
        extract_features(cube, out, pca=0, progress=progress, cancel=stop)
    assert len([d for d in seen if 0 < d < 1]) == 1  # stopped at the next step, not at the end of the chunk
    assert FeatureVolume.open(out, allow_partial=True).progress() == (0, 1)
    fv = extract_features(cube, out, pca=0)
    np.testing.assert_array_equal(fv.load()[0], reference.load()[0])


@pytest.mark.parametrize("workers", [1, 2])
def test_pca_fit_keeps_its_sample_chunks_when_stopped(tmp_path, workers):
    """Stopped after two of the PCA's sample chunks: the rerun embeds only the others and writes the store
    an uninterrupted run writes; the sample chunks' folder goes once the store exists."""
    cube = Cube.from_array(make_survey((48, 48, 48), seed=9).amplitude)
    chunks = (4, 4, 4)  # 27 chunks at stride 4 (12^3 grid): 8 sample chunks for the PCA
    reference = extract_features(cube, tmp_path / "ref.zarr", chunks=chunks, workers=1)
    emb = _Counting()
    out = tmp_path / "p.zarr"

    def stop():
        return len(emb.calls) >= 2

    with pytest.raises(SeisfmCancelled, match=r"fitting the PCA basis \(2 of 8 sample chunks kept\); run again"):
        extract_features(cube, out, chunks=chunks, embedder=emb, cancel=stop, workers=workers)
    assert (tmp_path / "p.zarr.pca-fit").is_dir() and not out.exists()
    emb.calls.clear()
    fv = extract_features(cube, out, chunks=chunks, embedder=emb, workers=workers)
    assert len(emb.calls) == 27 - 2  # the two kept sample chunks were not embedded again
    assert not (tmp_path / "p.zarr.pca-fit").exists()
    a, ok_a = fv.load()
    b, ok_b = reference.load()
    np.testing.assert_array_equal(ok_a, ok_b)
    np.testing.assert_array_equal(a, b)


class _Slow(_Counting):
    """Five steps of 0.3 s before the real work: long enough chunks that a Cancel lands inside one."""

    def embed_block(self, block, stride):
        import time

        for k in range(5):
            progress_.step(k, 5)
            time.sleep(0.3)
        return super().embed_block(block, stride)


def test_parallel_chunks_stop_within_a_chunk(tmp_path):
    """Chunks embedded in two threads: Cancel stops the chunks in flight at their next stage (the run ends
    before they are done), and progress moved within them."""
    cube = Cube.from_array(make_survey((96, 48, 48), seed=10).amplitude)
    emb = _Slow()
    stop = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done != int(done):  # a fraction: a chunk in flight reported a stage
            stop.set()

    out = tmp_path / "t.zarr"
    with pytest.raises(SeisfmCancelled, match="run again to resume"):
        extract_features(cube, out, chunks=(8, 12, 12), pca=0, embedder=emb, workers=2, progress=progress, cancel=stop)
    assert any(d != int(d) for d in seen)
    done, total = FeatureVolume.open(out, allow_partial=True).progress()
    assert total == 3 and done < total and len(emb.calls) < total  # stopped inside the chunks in flight
