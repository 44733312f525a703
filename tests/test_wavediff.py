"""WaveDiffusion parts on the micro setup: data, preprocessing, the PDE deviation, Stage 1/2 models,
checkpoints, resumable training and the inversions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_seisfm.errors import SeisfmError
from napari_seisfm.wavediff import data as wd
from napari_seisfm.wavediff.diffusion import DDPM, DIFFUSION_CONFIGS
from napari_seisfm.wavediff.invert import invert_refined, invert_stage1
from napari_seisfm.wavediff.model import WaveDiffusion, load, save
from napari_seisfm.wavediff.residual import deviation, measure, pair_deviation
from napari_seisfm.wavediff.train import train
from napari_seisfm.wavediff.vqae import VQ_CONFIGS, VQAE

MICRO = wd.SETUPS["micro"]
VQ = VQ_CONFIGS["micro"]
DIFF = DIFFUSION_CONFIGS["micro"]  # 100 steps


@pytest.fixture(scope="module")
def pairs():
    return wd.generate_pairs(8, MICRO, seed=3)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, pairs):
    d = tmp_path_factory.mktemp("pairs")
    wd.save_pairs(d, *pairs)
    return d


def test_velocity_families_are_distinct_and_in_range():
    rng = np.random.default_rng(0)
    maps = {k: wd.velocity_map(k, 32, 32, rng) for k in wd.KINDS}
    for k, v in maps.items():
        assert v.shape == (32, 32) and v.min() >= 1500 and v.max() <= 4500, k
    assert (np.diff(maps["flatvel"], axis=1) == 0).all()  # flat layers: constant along x
    assert not (np.diff(maps["curvevel"], axis=1) == 0).all()
    assert not (np.diff(maps["flatfault"], axis=1) == 0).all()
    with pytest.raises(SeisfmError, match="unknown velocity family"):
        wd.velocity_map("salt", 8, 8, rng)


def test_generated_pairs_have_openfwi_layout(pairs):
    s, v = pairs
    g = MICRO.geometry
    assert s.shape == (8, g.n_sources, g.nt, g.n_receivers) and v.shape == (8, 1, g.nz, g.nx)


def test_preprocessing_scales_into_the_unit_interval(pairs):
    s, v = pairs
    sm, vm = wd.seismic_to_model(s, MICRO), wd.velocity_to_model(v, MICRO)
    assert sm.shape == (8, 2, *MICRO.seis_size) and vm.shape == (8, 1, *MICRO.vel_size)
    assert sm.abs().max() <= 1 and vm.abs().max() <= 1 and sm.abs().max() > 0.5
    back = wd.velocity_from_model(vm, MICRO)
    assert torch.allclose(back, torch.as_tensor(v[:, 0]), atol=0.5)  # same grid: the scaling inverts exactly
    # the study's sizes: 70 x 70 -> 64 x 64 and 1000 x 70 -> 1024 x 64
    full = wd.SETUPS["openfwi"]
    assert wd.seismic_to_model(np.zeros((1, 5, 1000, 70)), full).shape == (1, 5, 1024, 64)
    assert wd.velocity_to_model(np.full((1, 1, 70, 70), 2000.0), full).shape == (1, 1, 64, 64)


def test_openfwi_files_are_memory_mapped_and_shape_checked(data_dir, tmp_path):
    s, v = wd.open_pairs(data_dir / "data.npy", data_dir / "model.npy", MICRO)
    assert isinstance(s, np.memmap) and s.shape[0] == v.shape[0] == 8
    np.save(tmp_path / "bad.npy", np.zeros((8, 2, 99, 16), np.float32))
    with pytest.raises(SeisfmError, match=r"bad.npy: seismic of shape \(8, 2, 99, 16\); expected \(N, 2, 150, 16\)"):
        wd.open_pairs(tmp_path / "bad.npy", data_dir / "model.npy", MICRO)
    np.save(tmp_path / "few.npy", np.zeros((3, 1, 16, 16), np.float32))
    with pytest.raises(SeisfmError, match="holds 8 gathers but .* 3 maps"):
        wd.open_pairs(data_dir / "data.npy", tmp_path / "few.npy", MICRO)
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(SeisfmError, match="cannot read as .npy"):
        wd.open_pairs(tmp_path / "junk.npy", data_dir / "model.npy", MICRO)


def test_pde_deviation_is_zero_for_true_pairs_and_large_for_mismatched(pairs):
    s, v = pairs
    sm, vm = wd.seismic_to_model(s, MICRO), wd.velocity_to_model(v, MICRO)
    true = pair_deviation(sm, vm, MICRO)
    wrong = pair_deviation(sm.roll(1, 0), vm, MICRO)
    assert true.max() < 1e-4
    assert wrong.min() > 100 * true.max()


def test_bad_velocities_are_refused_by_the_preprocessing():
    with pytest.raises(SeisfmError, match="NaN"):
        wd.velocity_to_model(np.full((1, 1, 16, 16), np.nan), MICRO)


@pytest.mark.parametrize("two_vq", [False, True])
def test_vq_autoencoder_decodes_both_modalities_and_learns(pairs, two_vq):
    torch.manual_seed(0)
    s, v = wd.seismic_to_model(pairs[0], MICRO), wd.velocity_to_model(pairs[1], MICRO)
    ae = VQAE(MICRO.shots, MICRO.seis_size, MICRO.vel_size, dataclasses.replace(VQ, two_vq=two_vq))
    z = ae.encode(s)
    assert z.shape == (8, VQ.zdim, VQ.latent, VQ.latent)
    s_hat, v_hat, _ = ae.decode(z)
    assert s_hat.shape == s.shape and v_hat.shape == v.shape
    assert (ae.vq_v is not ae.vq_s) == two_vq
    opt = torch.optim.Adam(ae.parameters(), 1e-3)
    first = ae.loss(s, v)[0].item()
    for _ in range(30):
        loss, parts = ae.loss(s, v)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first and set(parts) == {"seismic_l1", "velocity_l1", "vq"}


def test_ddpm_uses_the_studys_schedule_and_samples():
    ddpm = DDPM(4, DIFFUSION_CONFIGS["tiny"])
    assert ddpm.betas.shape == (1000,)
    assert ddpm.betas[0].item() == pytest.approx(0.0015) and ddpm.betas[-1].item() == pytest.approx(0.0155)
    assert ddpm.alphas_bar[-1] < 0.01  # the last step is nearly pure noise
    z, kept = ddpm.sample((2, 4, 8, 8), generator=torch.Generator().manual_seed(0), t_start=99, record={99, 50, -1})
    assert z.shape == (2, 4, 8, 8) and set(kept) == {99, 50, -1} and torch.equal(kept[-1], z)
    assert torch.isfinite(ddpm.loss(torch.randn(3, 4, 8, 8)))


def test_save_load_round_trip_and_configuration_check(tmp_path):
    torch.manual_seed(0)
    model = WaveDiffusion(MICRO, VQ, DIFF).eval()
    path = save(model, tmp_path / "m", {"name": "m", "steps": 3})
    card = (tmp_path / "m.toml").read_text()
    assert 'kind = "wavediffusion"' in card and "[setup.geometry]" in card
    back, meta = load(path)
    z = torch.randn(2, *model.latent_shape)
    assert torch.allclose(model.decode(z)[1], back.decode(z)[1])
    assert meta["setup"]["geometry"]["nz"] == 16 and meta["steps"] == 3
    other = WaveDiffusion(wd.SETUPS["tiny"], VQ, DIFF).config()
    with pytest.raises(SeisfmError, match="another configuration .*setup"):
        load(path, expect=other)
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(SeisfmError, match="not a seisfm wavediff model"):
        load(tmp_path / "x.safetensors")
    with pytest.raises(SeisfmError, match="no such model file"):
        load(tmp_path / "nothing.safetensors")


def test_training_is_resumable_and_refuses_mixups(data_dir, tmp_path):
    run = tmp_path / "run"
    kw = {"stage1_steps": 4, "stage2_steps": 3, "batch_size": 4, "checkpoint_every": 2}
    part = train(data_dir, run, MICRO, VQ, DIFF, stop_after_s=0, **kw)
    assert part["stage"] == 1 and part["step"] == 1 and "model" not in part
    with pytest.raises(SeisfmError, match="already here; add --resume"):
        train(data_dir, run, MICRO, VQ, DIFF, **kw)
    with pytest.raises(SeisfmError, match="another configuration"):
        train(data_dir, run, MICRO, dataclasses.replace(VQ, two_vq=True), DIFF, resume=True, **kw)
    done = train(data_dir, run, MICRO, VQ, DIFF, resume=True, **{**kw, "stage1_steps": 2})  # a new total
    assert len(done["losses1"]) == 2 and len(done["losses2"]) == 3
    model, card = load(done["model"])
    assert card["stage1_steps"] == 2 and model.z_std.item() != 1.0
    with pytest.raises(SeisfmError, match="stage 1 is finished after 2 steps"):
        train(data_dir, run, MICRO, VQ, DIFF, resume=True, **kw)
    with pytest.raises(SeisfmError, match="nothing to resume"):
        train(data_dir, tmp_path / "new", MICRO, VQ, DIFF, resume=True, **kw)


def test_measurement_and_inversions_run_on_a_model(pairs):
    torch.manual_seed(0)
    model = WaveDiffusion(MICRO, VQ, DIFF).eval()
    s = wd.seismic_to_model(pairs[0][:3], MICRO)
    r = measure(model, s, n_random=2, points=3)
    assert [t for t, _ in r["forward"]] == [0, 50, 99]
    assert [t for t, _ in r["backward"]] == [0, 50, 99, 100]
    assert r["trained"] == pytest.approx(float(deviation(model, model.encode(s)).mean()), rel=1e-5)
    assert r["random"] == r["backward"][0][1] and r["denoised_random"] == r["backward"][-1][1]
    v1 = invert_stage1(model, s)
    v2 = invert_refined(model, s, steps=3, candidates=4)
    assert v1.shape == v2.shape == (3, 1, *MICRO.vel_size)
    assert torch.equal(v2, invert_refined(model, s, steps=3, candidates=4))  # seeded


def test_table3_design_rows(pairs):
    from napari_seisfm.wavediff.augment import InversionNet, generate, mae, table3

    torch.manual_seed(0)
    model = WaveDiffusion(MICRO, VQ, DIFF).eval()
    real = wd.seismic_to_model(pairs[0], MICRO), wd.velocity_to_model(pairs[1], MICRO)
    gen = generate(model, 4)
    assert gen[0].shape == (4, 2, *MICRO.seis_size) and gen[1].abs().max() <= 1
    rows = table3(gen, real, real, [0.5], MICRO, VQ, steps=25)
    assert [r["setting"] for r in rows] == ["generated", "50% real", "generated + 50% real"]
    assert [r["n_train"] for r in rows] == [4, 4, 8]
    untrained = mae(InversionNet(MICRO, VQ).eval(), *real)
    assert rows[1]["mae"] < untrained  # 25 steps on the real half already beat an untrained network
