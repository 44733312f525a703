"""The project's MAE as codec rows and the latent-masking explorer, with tiny models trained here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from napari_seisfm.codecs import compare
from napari_seisfm.codecs.mae import (
    MaeCodec,
    check_fraction,
    decoder_models,
    load_mae,
    mae_codecs,
    parse_fractions,
    tile,
    untile,
)
from napari_seisfm.codecs.mae_masking import masking_study, pattern_mask
from napari_seisfm.errors import SeisfmError

pytestmark = pytest.mark.usefixtures("user_models")  # conftest: an empty user model directory


def section(ntr=70, ns=100, seed=0):
    """Dipping reflectors plus a little noise: structure an autoencoder can learn."""
    rng = np.random.default_rng(seed)
    tr, t = np.meshgrid(np.arange(ntr), np.arange(ns), indexing="ij")
    x = np.sin(2 * np.pi * (t + 0.3 * tr) / 11.0) + 0.5 * np.sin(2 * np.pi * (t - 0.2 * tr) / 7.0)
    return (x + 0.05 * rng.standard_normal(x.shape)).astype(np.float32)


def encoder_only_model(folder):
    """A model folder whose weights are an encoder alone (as NCS or MAE encoder checkpoints are)."""
    from safetensors.torch import save_file

    from napari_seisfm.encoders.vit import ViTEncoder, config

    folder.mkdir()
    save_file(ViTEncoder(config("test", tokenization="2.5d")).state_dict(), str(folder / "enc-only.safetensors"))
    (folder / "enc-only.toml").write_text(
        'id = "enc-only"\nname = "encoder only"\ntokenization = "2.5d"\ndim = 64\npatch = [8, 8]\nwindow = [32, 32]\n'
        'checkpoint = "enc-only.safetensors"\n\n[architecture]\nsize = "test"\n'
    )
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 2D and a 2.5D model of size "test" (window 32, patch 8, 64 wide), 3 training steps each."""
    from napari_seisfm.pretrain.run import pretrain

    d = tmp_path_factory.mktemp("mae")
    cube = np.stack([section(48, 64, seed=s) for s in range(40)])  # (40 inlines, 48 xl, 64 t)
    np.save(d / "c.npy", cube)
    out = {}
    for tok in ("2d", "2.5d"):
        pretrain(
            out=d / tok, cubes=[d / "c.npy"], size="test", tokenization=tok, steps=3, batch_size=2, device="cpu", install=False
        )
        out[tok] = d / tok
    out["cube"] = d / "c.npy"
    out["enc"] = encoder_only_model(d / "enc-only")
    return out


def test_load_mae_from_a_pretrain_folder(models):
    mae = load_mae(models["2d"], "cpu")
    assert mae.model_id == "2d" and mae.cfg.tokenization == "2d" and mae.cfg.window == 32 and mae.cfg.patch == 8
    assert mae.cfg.mask_ratio == 0.85 and mae.norm_pix_loss and not mae.training
    assert load_mae(models["2.5d"], "cpu").encoder.n_tokens == 4 * 16


def test_encoder_only_weights_are_refused_in_one_line(models, tmp_path):
    with pytest.raises(SeisfmError, match="holds an encoder only, no MAE decoder; .*seisfm pretrain") as e:
        load_mae(str(models["enc"]))
    assert "\n" not in str(e.value)
    (tmp_path / "models" / "enc-only.toml").write_text(
        (models["enc"] / "enc-only.toml")
        .read_text()
        .replace('"enc-only.safetensors"', repr(str(models["enc"] / "enc-only.safetensors")).replace("'", '"'))
    )
    listed = decoder_models()
    assert "enc-only" not in listed and "seisfm-micro-2.5d" in listed  # the bundled model keeps its decoder
    with pytest.raises(SeisfmError, match="unknown"):
        load_mae("no-such-model")


def test_decoder_models_lists_installed_maes(models, user_models):
    from napari_seisfm.pretrain.run import pretrain

    pretrain(
        out=user_models.parent / "run",
        cubes=[models["cube"]],
        name="mine",
        size="test",
        tokenization="2d",
        steps=1,
        batch_size=2,
        device="cpu",
        install=True,
    )
    assert decoder_models() == ["mine", "seisfm-micro-2.5d"]  # the bundled model keeps its decoder


def test_tile_round_trip():
    x = np.arange(70 * 100, dtype=np.float32).reshape(70, 100)
    tiles, grid = tile(x, 32)
    assert tiles.shape == (3 * 4, 32, 32) and grid == (3, 4)
    np.testing.assert_array_equal(tiles[5], np.pad(x, ((0, 26), (0, 28)), mode="edge")[32:64, 32:64])
    np.testing.assert_array_equal(untile(tiles, grid, x.shape), x)


@pytest.mark.parametrize("tok, tokens", [("2d", 16), ("2.5d", 64)])
def test_rows_and_stored_bytes_follow_the_formula(models, tok, tokens):
    mae = load_mae(models[tok], "cpu")
    x = section(70, 100)
    comp = compare(x, mae_codecs(mae) + ["quant8"], trim_multiple=1)
    rows = {r.method: r for r in comp.rows}
    assert list(rows) == ["mae-r0", "mae-r0.85", "mae-stats-only", "quant8"]
    n_tiles = math.ceil(70 / 32) * math.ceil(100 / 32)  # 12: edge-padded to 96 x 128
    stats = 16 * 2 * 2  # mean and std (float16) of the 16 inline-view patches of a tile
    kept = {"mae-r0": tokens, "mae-r0.85": round(tokens * 0.15)}
    for name, k in kept.items():
        r = rows[name]
        expected = n_tiles * ((1 + k) * 64 * 2 + stats) + (8 if name != "mae-r0" else 0)
        assert r.ok and r.kind == "neural" and r.nbytes == expected
        assert r.ratio == pytest.approx(70 * 100 * 4 / expected)
        assert comp.reconstructions[name].shape == x.shape and np.isfinite(comp.reconstructions[name]).all()
        assert math.isfinite(r.snr) and r.backend == f"torch-cpu:{tok}"
    assert rows["mae-r0.85"].ratio > rows["mae-r0"].ratio
    # the side information alone: 8 x 8 block means of the edge-padded section, same stats bytes
    assert rows["mae-stats-only"].nbytes == n_tiles * stats
    xp = np.pad(comp.input, ((0, 26), (0, 28)), mode="edge")
    means = xp.reshape(12, 8, 16, 8).mean(axis=(1, 3))
    expected = np.repeat(np.repeat(means, 8, 0), 8, 1)[:70, :100]
    np.testing.assert_allclose(comp.reconstructions["mae-stats-only"], expected, atol=2e-3)  # float16 means


def test_masked_row_is_the_mae_forward_pass(models):
    """Our seed-regenerated split and de-normalisation give MAE's own prediction of the masked patches."""
    from napari_seisfm.pretrain.outputs import reconstruct

    mae = load_mae(models["2d"], "cpu")
    x = np.clip(section(32, 32, seed=3), -2.9, 2.9)  # one tile, inside the clip
    codec = MaeCodec(mae, 0.85, seed=7)
    y = codec.decode(codec.encode(x))
    _, ref = reconstruct(mae, torch.from_numpy(x.T.copy())[None], 0.85, torch.Generator().manual_seed(7))
    _, _, mask = mae(torch.from_numpy(x.T.copy())[None], 0.85, torch.Generator().manual_seed(7))
    hidden = mask[0].reshape(4, 4).bool().repeat_interleave(8, 0).repeat_interleave(8, 1).numpy()  # (time, trace)
    assert hidden.mean() == pytest.approx(14 / 16)
    np.testing.assert_allclose(y.T[hidden], ref[0].numpy()[hidden], atol=0.05)  # float16 latent and stats


def test_without_patch_stats_the_row_is_smaller():
    from napari_seisfm.encoders.vit import MaskedAutoencoder, config

    mae = MaskedAutoencoder(config("test", tokenization="2d")).eval()
    with_stats, without = MaeCodec(mae, 0.0), MaeCodec(mae, 0.0, patch_stats=False)
    assert without.name == "mae-r0-nostats"
    x = section(64, 64)
    assert with_stats.encode(x).nbytes - without.encode(x).nbytes == 4 * 16 * 2 * 2
    assert without.decode(without.encode(x)).shape == x.shape


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan"), "abc"])
def test_bad_fractions_are_one_clear_error(models, bad):
    with pytest.raises(SeisfmError, match=r"must be in \[0, 1\)|not a number"):
        check_fraction(bad)
    mae = load_mae(models["2d"], "cpu")
    with pytest.raises(SeisfmError, match=r"must be in \[0, 1\)|not a number"):
        masking_study(section(), mae, [0.0, bad])
    with pytest.raises(SeisfmError, match=r"must be in \[0, 1\)|not a number"):
        MaeCodec(mae, bad)


def test_parse_fractions():
    assert parse_fractions("0, 0.5,0.9") == [0.0, 0.5, 0.9]
    with pytest.raises(SeisfmError, match="'1'"):
        parse_fractions("0,1")


def test_pattern_masks():
    gen = torch.Generator().manual_seed(0)
    cols = pattern_mask("columns", 0.5, 10, 1, 4, gen).reshape(10, 4, 4)
    assert bool((cols.all(1) | ~cols.any(1)).all()) and int(cols.all(1).sum(1).unique()) == 2  # 2 whole columns
    blocks = pattern_mask("blocks", 0.4, 10, 4, 4, gen).reshape(10, 4, 4, 4)
    assert bool((blocks == blocks[:, :1]).all())  # the same place in every view
    for b in blocks[:, 0]:
        rows, cols_ = np.nonzero(b.numpy())
        assert b.sum() == 6 and (np.ptp(rows) + 1) * (np.ptp(cols_) + 1) <= 3 * 2  # one 3 x 2 box
    rnd = pattern_mask("random", 0.999, 5, 4, 4, gen)
    assert bool((rnd.sum(1) == 63).all())  # one token always stays visible


@pytest.mark.parametrize("pattern", ["random", "columns", "blocks"])
def test_hidden_tokens_really_are_hidden(models, pattern):
    """The decoded section does not depend on the latent of masked tokens, and does on the others."""
    from napari_seisfm.codecs.mae import decode_tiles, encode_tiles, model_input, split_from_mask

    mae = load_mae(models["2.5d"], "cpu")
    tiles, _ = tile(section(64, 64), 32)
    latent = encode_tiles(mae, model_input(mae, tiles))
    mask = pattern_mask(pattern, 0.5, len(tiles), 4, 4, torch.Generator().manual_seed(1))
    keep, restore = split_from_mask(mask)

    def decoded(lat):
        kept = torch.cat([lat[:, :1], torch.gather(lat[:, 1:], 1, keep[..., None].expand(-1, -1, lat.shape[2]))], 1)
        return decode_tiles(mae, kept, restore)

    noise = torch.randn(latent.shape[0], 64, latent.shape[2]).half()
    hidden_changed = latent.clone()
    hidden_changed[:, 1:][mask] = noise[mask]
    visible_changed = latent.clone()
    visible_changed[:, 1:][~mask] = noise[~mask]
    base = decoded(latent)
    np.testing.assert_array_equal(decoded(hidden_changed), base)
    assert np.abs(decoded(visible_changed) - base).mean() > 1e-3


def test_masking_study_rows_and_fraction_zero_is_the_r0_row(models):
    mae = load_mae(models["2.5d"], "cpu")
    x = section(64, 96)
    study = masking_study(x, mae, [0.0, 0.5, 0.9])
    assert [(r.pattern, r.fraction) for r in study.rows] == [
        (p, f) for p in ("random", "columns", "blocks") for f in (0.0, 0.5, 0.9)
    ]
    masked = {(r.pattern, r.fraction): r.masked for r in study.rows}
    assert masked[("random", 0.5)] == 0.5 and masked[("columns", 0.9)] == 0.75 and masked[("blocks", 0.9)] == 14 / 16
    r0, base = compare(x, mae_codecs(mae, [0.0])).rows
    assert base.method == "mae-stats-only" and study.stats_only["snr"] == pytest.approx(base.snr)
    for r in study.rows:
        if r.fraction == 0:
            assert r.masked == 0 and r.snr == pytest.approx(r0.snr, abs=1e-6) and r.ssim == pytest.approx(r0.ssim)


def test_cli_rows_and_masking(models, tmp_path, capsys):
    from napari_seisfm.cli import main

    assert main(["codecs", str(models["cube"]), "--codecs", "quant8", "--mae", str(models["2d"]), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["method"] for r in rows] == ["quant8", "mae-r0", "mae-r0.85", "mae-stats-only"]
    png = tmp_path / "m.png"
    assert (
        main(
            [
                "codecs",
                str(models["cube"]),
                "--mae",
                str(models["2d"]),
                "--masking",
                "0,0.5",
                "--patterns",
                "random,columns",
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| random | 0.5 | 0.500 |" in out and "| columns | 0 | 0.000 |" in out and png.stat().st_size > 1000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--masking", "0,1", "--mae", "M2D"], "must be in [0, 1)"),
        (["--masking"], "needs --mae MODEL"),
        (["--mae", "ENC"], "holds an encoder only"),
        (["--mae", "M2D", "--mae-ratios", "0.5,-1"], "must be in [0, 1)"),
        (["--mae", "M2D", "--masking", "0.5", "--patterns", "spiral"], "masking patterns 'spiral'"),
    ],
)
def test_cli_bad_input_exit_2_one_line(models, capsys, argv, message):
    from napari_seisfm.cli import main

    argv = [{"M2D": str(models["2d"]), "ENC": str(models["enc"])}.get(a, a) for a in argv]
    assert main(["codecs", str(models["cube"]), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


# ---------------------------------------------------------------------------- the dock (under xvfb-run)
@pytest.mark.gui
def test_dock_lists_decoder_models_adds_rows_and_plots_masking(models, user_models, make_napari_viewer, qtbot, monkeypatch):
    pytest.importorskip("napari")
    import napari_seisfm.plugin.widgets.codecs as mod
    from napari_seisfm.pretrain.run import pretrain

    pretrain(
        out=user_models.parent / "run",
        cubes=[models["cube"]],
        name="mine",
        size="test",
        tokenization="2d",
        steps=1,
        batch_size=2,
        device="cpu",
        install=True,
    )
    viewer = make_napari_viewer()
    w = mod.CodecWidget(viewer)
    viewer.window.add_dock_widget(w)
    shown = []
    from napari_seisfm.plugin.widgets import _notify

    monkeypatch.setattr(_notify, "show_error", shown.append)
    assert [w.mae_model.itemText(i) for i in range(w.mae_model.count())] == ["", "mine", "seisfm-micro-2.5d"]
    viewer.add_image(section(64, 96), name="line")

    w.run_masking()  # no model chosen yet
    assert shown and "choose an MAE model" in shown[-1] and w.jobs.worker is None
    w.mae_model.setCurrentText("mine")
    w.masking.value = "0,1.5"
    w.run_masking()
    assert "must be in [0, 1)" in shown[-1] and w.jobs.worker is None

    w.codecs.value = "quant8"
    w.run()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60000)
    comp, _ = w.result
    assert [r.method for r in comp.rows] == ["quant8", "mae-r0", "mae-r0.85", "mae-stats-only"]
    assert w.table.rowCount() == 4
    w.table.selectRow(2)
    assert viewer.layers["line codec reconstruction"].metadata["codec"] == "mae-r0.85"

    w.masking.value = "0,0.5"
    w.run_masking()
    assert w.jobs.worker is not None and not w.mask_button.isEnabled()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60000)
    study = w.masking_result
    assert [(r.pattern, r.fraction) for r in study.rows][:2] == [("random", 0.0), ("random", 0.5)]
    assert len(w.mask_figure.axes) == 2 and len(w.mask_figure.axes[0].lines) == 4  # 3 patterns + means alone
    assert w.mask_button.isEnabled()

    w.mae_model.setCurrentText(str(models["enc"]))  # typed by hand: refused in one line, no rows
    w.run()
    qtbot.waitUntil(lambda: w.jobs.worker is None, timeout=60000)
    assert "holds an encoder only" in shown[-1]
