"""`seisfm pretrain`: exact resume (cancelled and killed runs), a usable model, every user
mistake as one line with nothing presented as a finished model, the --minutes schedule, image
sets, --init, and two-process DDP on CPU (gloo, through torchrun)."""

from __future__ import annotations

import errno
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from napari_seisfm.cli import main as cli
from napari_seisfm.encoders import registry
from napari_seisfm.errors import SeisfmCancelled, SeisfmError
from napari_seisfm.pretrain.data import WindowSampler, array_source
from napari_seisfm.pretrain.run import pretrain
from napari_seisfm.pretrain.trainer import PROBE_TOTAL, Pretrainer, PretrainSettings, build_mae, learning_rate, read_checkpoint

REPO = Path(__file__).resolve().parents[1]
FAST = {"size": "test", "batch_size": 2, "device": "cpu"}
CLI_FAST = ["--batch-size", "2", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("user_models")  # conftest: an empty user model directory


def cube_file(d: Path, shape=(40, 40, 48), seed=0, name="c.npy") -> Path:
    path = d / name
    np.save(path, np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    return path


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def cards(d: Path) -> list[Path]:
    return sorted(Path(d).glob("*.toml"))


def seisfm(*argv) -> int:
    return cli([str(a) for a in argv])


def one_line_error(capsys, *argv, match=None) -> str:
    assert seisfm(*argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and not ln.startswith("pretrain:")]
    assert len(lines) == 1 and lines[0].startswith("seisfm: error:"), err  # progress bars aside
    if match:
        assert match in err, err
    return err


# ------------------------------------------------------------------ 1: exact resume


def test_cancelled_and_killed_runs_resume_to_the_uninterrupted_weights(tmp_path):
    cube = cube_file(tmp_path)
    n, k = 6, 3
    killed = tmp_path / "killed"

    def snapshot(p):  # a "kill" after step k: the folder as it is then (checkpoint of step k-1)
        if p.step == k:
            shutil.copytree(tmp_path / "ref", killed)

    ref = pretrain(
        out=tmp_path / "ref", name="m", cubes=[cube], steps=n, checkpoint_every=2, install=False, progress=snapshot, **FAST
    )
    assert ref.steps == n and read_checkpoint(killed)["step"] == 2 and not cards(killed)

    calls = []
    with pytest.raises(SeisfmCancelled, match=f"stopped at step {k} of {n}"):
        pretrain(
            out=tmp_path / "cut",
            name="m",
            cubes=[cube],
            steps=n,
            install=False,
            progress=calls.append,
            cancel=lambda: len(calls) >= k,
            **FAST,
        )
    assert read_checkpoint(tmp_path / "cut")["step"] == k
    assert not cards(tmp_path / "cut") and not list((tmp_path / "cut").glob("*.safetensors"))  # a run, no model

    resumed = pretrain(out=tmp_path / "cut", resume=True, install=False, device="cpu")
    again = pretrain(out=killed, resume=True, install=False, device="cpu")
    for run in (resumed, again):
        assert run.history.step == ref.history.step and run.history.loss == ref.history.loss
        assert run.history.lr == ref.history.lr
        assert_same_weights(run.out / "m.safetensors", ref.out / "m.safetensors")


def test_unfinished_run_is_no_model(tmp_path, capsys):
    cube = cube_file(tmp_path)
    with pytest.raises(SeisfmCancelled):
        pretrain(out=tmp_path / "run", cubes=[cube], steps=4, cancel=lambda: True, **FAST)
    assert read_checkpoint(tmp_path / "run")["step"] == 0
    one_line_error(
        capsys,
        "embed",
        cube,
        "--out",
        tmp_path / "f.zarr",
        "--model",
        tmp_path / "run",
        "--device",
        "cpu",
        match="has not finished",
    )
    assert cli(["models"]) == 0
    assert "run" not in capsys.readouterr().out.split()


# ------------------------------------------------------------------ 2: the model is usable


def test_finished_model_embeds_by_folder_and_by_name(tmp_path, capsys, user_models):
    from napari_seisfm.encoders.checkpoint import sha256_file
    from napari_seisfm.store.volume import FeatureVolume

    cube = cube_file(tmp_path)
    out = tmp_path / "mine"
    assert seisfm("pretrain", cube, "--out", out, "--steps", "2", *CLI_FAST) == 0
    printed = capsys.readouterr().out
    assert "model mine:" in printed and "seisfm embed --model mine" in printed
    assert [c.name for c in cards(out)] == ["mine.toml"] and [c.name for c in cards(user_models)] == ["mine.toml"]
    for f in ("checkpoint.pt", "losses.csv", "losses.png", "reconstructions.png"):
        assert (out / f).is_file(), f

    card = registry.card(str(out))
    w = out / "mine.safetensors"
    assert card.id == "mine" and card.sha256 == sha256_file(w)
    assert card.extra["training"]["steps"] == 2
    assert os.stat(w).st_mode & 0o777 == os.stat(out).st_mode & 0o666  # not safetensors' 0600
    keys = weights(w).keys()
    assert any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder") for k in keys)

    assert cli(["models"]) == 0
    assert "mine" in capsys.readouterr().out
    emb = registry.get_embedder(str(out), device="cpu")
    assert emb.card.id == "mine"

    for model in (str(out), "mine"):
        store = tmp_path / f"f-{len(model)}.zarr"
        assert seisfm("embed", cube, "--out", store, "--model", model, "--stride", "8", "--pca", "0", "--device", "cpu") == 0, (
            capsys.readouterr().err
        )
        fv = FeatureVolume.open(store)
        assert fv.grid.shape[0] == 5 and fv.dim == 64
    capsys.readouterr()

    # a second run with the same id lists nothing over the first (and says so)
    assert seisfm("pretrain", cube, "--out", tmp_path / "other", "--name", "mine", "--steps", "1", *CLI_FAST) == 0
    assert "taken by another model" in capsys.readouterr().out
    assert str(w.resolve()) in (user_models / "mine.toml").read_text()


# ------------------------------------------------------------------ 3: bad input, one line each


@pytest.fixture
def runs(tmp_path):
    """A cube, a finished model folder and an unfinished run folder."""
    cube = cube_file(tmp_path)
    pretrain(out=tmp_path / "done", cubes=[cube], steps=1, install=False, **FAST)
    shutil.copytree(tmp_path / "done", tmp_path / "half")
    for f in (tmp_path / "half").glob("done.*"):
        f.unlink()
    return cube, tmp_path / "done", tmp_path / "half"


def bad_files(d: Path) -> dict[str, Path]:
    rng = np.random.default_rng(5)
    (d / "junk.sgy").write_bytes(rng.bytes(5000))
    good = cube_file(d, name="good.npy")
    (d / "cut.npy").write_bytes(good.read_bytes()[:3000])
    small = cube_file(d, (40, 40, 20), name="small.npy")
    np.save(d / "nan.npy", np.full((40, 40, 48), np.nan, np.float32))
    np.savez(d / "imgs.npz", images=rng.standard_normal((3, 48, 40)).astype(np.float32), masks=np.zeros((3, 48, 40), np.uint8))
    mae3d = build_mae(PretrainSettings(size="test", tokenization="3d"))
    save_file({k: v.contiguous() for k, v in mae3d.state_dict().items()}, str(d / "mae3d.safetensors"))
    micro = build_mae(PretrainSettings(size="micro", tokenization="2.5d"))
    save_file({k: v.contiguous() for k, v in micro.encoder.state_dict().items()}, str(d / "micro-enc.safetensors"))
    return {
        "junk": d / "junk.sgy",
        "cut": d / "cut.npy",
        "small": small,
        "nan": d / "nan.npy",
        "imgs": d / "imgs.npz",
        "mae3d": d / "mae3d.safetensors",
        "micro": d / "micro-enc.safetensors",
    }


BAD = [  # (arguments, what the one line must say); {name} is a path from bad_files / runs
    (["{junk}", "--out", "{tmp}/o", "--steps", "1"], "not a readable SEG-Y"),
    (["{cut}", "--out", "{tmp}/o", "--steps", "1"], "not a readable .npy"),
    (["{small}", "--out", "{tmp}/o", "--steps", "1"], "too small for the model's 32-sample window"),
    (["{nan}", "--out", "{tmp}/o", "--steps", "1"], "no live traces"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--init", "{mae3d}"], "does not match this model"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--init", "{micro}"], "does not match this model's encoder"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--init", "{mae3d}", "--tokenization", "2d"], "does not match"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--init", "{tmp}/nothing.pt"], "no such checkpoint"),
    (["{cube}", "--out", "{done}", "--steps", "1"], "already holds the finished model"),
    (["{cube}", "--out", "{half}", "--steps", "1"], "holds an unfinished run (step 1 of 1)"),
    (["--resume", "--out", "{tmp}/empty"], "no run to resume"),
    (["--resume", "--out", "{done}"], "nothing to resume"),
    (["{small}", "--resume", "--out", "{half}"], "other data than the run's"),
    (["--resume", "--out", "{half}", "--steps", "7"], "keeps the run's budget (--steps 1)"),
    (["--resume", "--out", "{half}", "--init", "{mae3d}"], "--init starts a new run"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--weights", "1,2"], "2 weights for 1 sources"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--weights", "-1"], "must be >= 0"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--weights", "a"], "expected numbers"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "0"], "--steps 0: must be at least 1"),
    (["{cube}", "--out", "{tmp}/o", "--minutes", "-1"], "--minutes -1.0: must be positive"),
    (["{cube}", "--out", "{tmp}/o"], "give --steps N or --minutes M"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--size", "huge"], "unknown ViT size 'huge'"),
    (["--images", "{imgs}", "--out", "{tmp}/o", "--steps", "1", "--tokenization", "3d"], "cannot train a 3d model"),
    (["--out", "{tmp}/o", "--steps", "1"], "nothing to train on"),
    (["{cube}", "--out", "{tmp}/o", "--steps", "1", "--name", "a/b"], "a model id is a plain name"),
    (["{cube}", "--out", "{cube}", "--steps", "1"], "cannot write the run here"),
]


def test_bad_input_is_one_line_and_no_model(tmp_path, capsys, runs, user_models):
    cube, done, half = runs
    paths = {k: str(v) for k, v in bad_files(tmp_path).items()}
    paths.update(cube=str(cube), done=str(done), half=str(half), tmp=str(tmp_path))
    done_before = {p.name: p.read_bytes() for p in done.iterdir()}
    for args, match in BAD:
        one_line_error(capsys, "pretrain", *[a.format(**paths) for a in args], *CLI_FAST, match=match)
        assert not (tmp_path / "o").exists() or not cards(tmp_path / "o"), args
    assert not cards(half) and read_checkpoint(half)["step"] == 1
    assert {p.name: p.read_bytes() for p in done.iterdir()} == done_before  # the finished model untouched
    assert not cards(user_models)


def test_some_nan_traces_train(tmp_path, capsys):
    a = np.random.default_rng(1).standard_normal((40, 40, 48)).astype(np.float32)
    a[3:9, 4] = np.nan
    a[20, 20, 7] = np.inf
    np.save(tmp_path / "holes.npy", a)
    assert cli(["pretrain", str(tmp_path / "holes.npy"), "--out", str(tmp_path / "r"), "--steps", "2", *CLI_FAST]) == 0
    loss = read_checkpoint(tmp_path / "r")["history"]["loss"]
    assert len(loss) == 2 and all(math.isfinite(v) for v in loss)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="chmod does not stop root")
def test_read_only_out(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_line_error(
            capsys, "pretrain", cube_file(tmp_path), "--out", ro, "--steps", "1", *CLI_FAST, match="cannot write the run here"
        )
    finally:
        ro.chmod(0o755)


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    cube = cube_file(tmp_path)
    real_save, calls = torch.save, []

    def save(obj, f, *a, **kw):
        calls.append(f)
        if len(calls) >= 2:
            Path(f).write_bytes(b"partial")  # what a full disk leaves behind
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(SeisfmError) as info:
        pretrain(out=tmp_path / "r", cubes=[cube], steps=3, checkpoint_every=1, install=False, **FAST)
    msg = str(info.value)
    assert "\n" not in msg and "No space left on device" in msg and "previous checkpoint" in msg
    assert read_checkpoint(tmp_path / "r")["step"] == 1
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint.pt"]  # no .tmp, no model
    # the same through the CLI, resuming: one line, the checkpoint still at step 1
    one_line_error(capsys, "pretrain", "--resume", "--out", tmp_path / "r", "--device", "cpu", match="No space left on device")
    assert read_checkpoint(tmp_path / "r")["step"] == 1
    monkeypatch.setattr(torch, "save", real_save)
    assert pretrain(out=tmp_path / "r", resume=True, install=False, device="cpu").steps == 3


# ------------------------------------------------------------------ 4: the schedule


def test_learning_rate_schedule():
    s = PretrainSettings(batch_size=64, base_lr=1e-3, steps=200)
    assert s.lr == pytest.approx(2.5e-4)
    lrs = [learning_rate(s, i, 200) for i in range(200)]
    warm = 10  # 5 % of 200
    assert lrs[:warm] == pytest.approx([s.lr * (i + 1) / warm for i in range(warm)])
    assert max(lrs) == pytest.approx(s.lr) and int(np.argmax(lrs)) in (warm - 1, warm)
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1 :]))  # cosine: never up again
    assert learning_rate(s, warm + 95, 200) == pytest.approx(s.lr / 2)  # half-way down
    assert lrs[-1] < 1e-3 * s.lr
    assert learning_rate(s, 0, 1) == pytest.approx(s.lr)  # one step: warm-up of 1


def test_minutes_become_steps_and_the_schedule_ends_near_zero(tmp_path):
    res = pretrain(out=tmp_path / "r", cubes=[cube_file(tmp_path)], minutes=0.04, install=False, **FAST)
    h, s = res.history, PretrainSettings(batch_size=2)
    total = read_checkpoint(tmp_path / "r")["total"]
    assert total == res.steps == len(h.lr) > 5 and h.step == list(range(total))
    # how close the run ends to its budget is a timing: benchmarks/bench_pretrain_budget.py measures it
    # steps after the 5 timed ones follow the schedule of the real length ...
    assert h.lr[5:] == pytest.approx([learning_rate(s, i, total) for i in range(5, total)])
    # ... and the timed ones stay below it (a rising warm-up, no early peak)
    assert h.lr[:5] == pytest.approx([learning_rate(s, i, PROBE_TOTAL) for i in range(5)])
    warm = max(1, math.ceil(0.05 * total))
    assert all(a <= b for a, b in zip(h.lr[:warm], h.lr[1:warm]))
    assert h.lr[-1] <= 0.5 * (1 + math.cos(math.pi * (total - 1 - warm) / (total - warm))) * s.lr + 1e-12
    assert h.lr[-1] < 0.15 * s.lr


# ------------------------------------------------------------------ 5: image sets


@pytest.mark.parametrize("tokenization", ["2d", "2.5d"])
def test_image_sets_train_2d_and_25d(tmp_path, tokenization):
    rng = np.random.default_rng(2)
    npz = tmp_path / "sections.npz"
    np.savez(npz, images=rng.standard_normal((4, 48, 56)).astype(np.float32), masks=np.zeros((4, 48, 56), np.uint8))
    res = pretrain(out=tmp_path / "r", images=[npz], steps=2, tokenization=tokenization, install=False, **FAST)
    card = registry.card(str(tmp_path / "r"))
    assert card.tokenization == tokenization and res.steps == 2
    assert card.extra["training"]["data"] == [f"images:{npz.resolve()}"]


# ------------------------------------------------------------------ 6: --init


def sampler(kind="2.5d"):
    cube = np.random.default_rng(3).standard_normal((40, 40, 48)).astype(np.float32)
    return WindowSampler([array_source("c", cube)], kind, 32)


def test_init_from_a_finished_model_and_from_an_encoder(tmp_path):
    first = pretrain(out=tmp_path / "a", cubes=[cube_file(tmp_path)], steps=1, install=False, **FAST)
    full = first.out / "a.safetensors"
    t = Pretrainer(PretrainSettings(size="test", steps=1, batch_size=2), sampler(), tmp_path / "b", device="cpu", init=full)
    assert "encoder and decoder" in t.init_note
    mine = t.mae.state_dict()
    for k, v in weights(full).items():
        assert torch.equal(mine[k], v), k

    from safetensors.torch import save_file

    from napari_seisfm.encoders.vit import ViTEncoder, config

    micro = tmp_path / "encoder.safetensors"  # an encoder alone, as NCS and MAE encoder checkpoints are
    save_file(ViTEncoder(config("test", tokenization="2.5d")).state_dict(), str(micro))
    enc = weights(micro)
    t = Pretrainer(PretrainSettings(size="test", steps=1, batch_size=2), sampler(), tmp_path / "c", device="cpu", init=micro)
    assert "decoder fresh" in t.init_note
    mine = t.mae.encoder.state_dict()
    assert enc.keys() == mine.keys()
    for k, v in enc.items():
        assert torch.equal(mine[k], v), k

    # through pretrain(): trained on from there, and the card says where it started
    res = pretrain(out=tmp_path / "d", cubes=[cube_file(tmp_path)], steps=1, base_lr=1e-12, init=micro, install=False, **FAST)
    after = weights(res.out / "d.safetensors")
    assert torch.allclose(after["encoder.patch_embed.proj.weight"], enc["patch_embed.proj.weight"], atol=1e-6)
    assert str(micro.resolve()) in registry.card(str(res.out)).extra["training"]["init"]


# ------------------------------------------------------------------ 7: DDP, two CPU processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tmp_path, user_models):
    cube = cube_file(tmp_path)
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", SEISFM_MODELS=str(user_models))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "napari_seisfm.cli",
        "pretrain",
        str(cube),
        "--out",
        str(out),
        "--steps",
        "3",
        *CLI_FAST,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model ddp:") == 1  # rank 0 alone reports the model
    assert [c.name for c in cards(out)] == ["ddp.toml"] and [c.name for c in cards(user_models)] == ["ddp.toml"]
    h = read_checkpoint(out)["history"]
    assert h["step"] == [0, 1, 2] and all(math.isfinite(v) for v in h["loss"])
    emb = registry.get_embedder(str(out), device="cpu")
    assert emb.card.id == "ddp"
    assert "Traceback" not in done.stderr


def test_ctrl_c_inside_an_update_keeps_the_last_consistent_checkpoint(tmp_path):
    """KeyboardInterrupt can land in the middle of AdamW's per-parameter loop: that state is
    never saved (resuming it would apply the step twice); the step's own checkpoint is."""
    from napari_seisfm.pretrain.run import open_sources, source_specs

    cube = cube_file(tmp_path)
    ref = pretrain(out=tmp_path / "ref", name="m", cubes=[cube], steps=4, install=False, **FAST)
    specs = source_specs([cube])
    settings = PretrainSettings(name="m", size="test", steps=4, batch_size=2, checkpoint_every=1)
    (tmp_path / "cut").mkdir()
    t = Pretrainer(settings, WindowSampler(open_sources(specs), "2.5d", 32), tmp_path / "cut", device="cpu", sources=specs)
    real_step = t.opt.step

    def step_then_interrupt(*a, **kw):  # step 2's update done, then Ctrl-C before the count moves
        real_step(*a, **kw)
        if t.step == 2:
            raise KeyboardInterrupt

    t.opt.step = step_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        t.run()
    assert read_checkpoint(tmp_path / "cut")["step"] == 2  # step 2's own checkpoint, not the half-way state
    res = pretrain(out=tmp_path / "cut", resume=True, install=False, device="cpu")
    assert res.history.loss == ref.history.loss
    assert_same_weights(res.out / "m.safetensors", ref.out / "m.safetensors")
