"""The quality protocol's metrics against brute force and analytic cases."""

import numpy as np
import pytest

from napari_seisfm.quality import auc, best_iou, iou

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)


def test_best_iou_is_the_best_over_every_threshold():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(5, 60))
        scores = rng.integers(0, 8, n).astype(float)  # many ties: a threshold cannot split them
        truth = rng.random(n) < 0.3
        brute = max([iou(scores >= t, truth) for t in np.unique(scores)] + [0.0])
        assert abs(best_iou(scores, truth) - brute) < 1e-12


def test_best_iou_and_auc_analytic_cases():
    truth = np.array([0, 0, 1, 1, 0, 1], bool)
    perfect = truth.astype(float)
    assert best_iou(perfect, truth) == 1.0 and auc(perfect, truth) == 1.0
    assert best_iou(-perfect, truth) == 0.5  # best is to take everything: 3 of 6
    assert auc(-perfect, truth) == 0.0
    with_nan = np.where(truth, 1.0, np.nan)
    assert best_iou(with_nan, truth) == 1.0  # no-value points are never selected
    assert best_iou(perfect, np.zeros(6, bool)) == 0.0


# ---------------------------------------------------------------------- protocols (seisfm bench)
from napari_seisfm import quality  # noqa: E402
from napari_seisfm.cli import main as cli  # noqa: E402
from napari_seisfm.search import FeatureMatrix  # noqa: E402

SHAPE = (10, 12, 14)


def _truth():
    t = np.zeros(SHAPE, int)
    t[:, :, 5:9] = 1
    t[2:6, 3:8, 10:13] = 2
    return t


def _features(truth, noise, seed=0):
    rng = np.random.default_rng(seed)
    v = np.eye(3, dtype=np.float32)[truth] + noise * rng.normal(size=(*SHAPE, 3)).astype(np.float32)
    return FeatureMatrix.from_array(v, SHAPE, dtype="int8")


@pytest.mark.parametrize("method", ["knn", "linear"])
def test_perfect_features_give_miou_one_and_random_features_give_chance(method):
    truth = _truth()
    opts = {"smooth": 0} if method == "linear" else {}  # smoothing rounds the corners of a 3-sample body
    r = quality.segmentation_quality(_features(truth, 0.0), truth, [0, 1, 2], method=method, n_per_class=20, **opts)
    assert r["miou"] == 1.0 and r["n_support"] == 60
    rng = np.random.default_rng(1)
    random_fm = FeatureMatrix.from_array(rng.normal(size=(*SHAPE, 8)).astype(np.float32), SHAPE, dtype="int8")
    half = (np.arange(np.prod(SHAPE)) % 2).reshape(SHAPE)  # two balanced classes, unrelated to the features
    chance = quality.segmentation_quality(random_fm, half, [0, 1], method=method, n_per_class=50, **opts)
    assert 0.2 < chance["miou"] < 0.45  # IoU of a coin flip per class is 1/3


def test_single_line_supervision_uses_that_line_only_and_seeds_reproduce():
    truth = _truth()
    fm = _features(truth, 0.3)
    r = quality.segmentation_quality(fm, truth, [0, 1, 2], method="linear", line=True, target=2)
    inline = r["line_inline"]
    assert (truth[inline] == 2).sum() == max((truth[i] == 2).sum() for i in range(SHAPE[0]))
    assert (r["support_points"][:, 0] == inline).all() and len(r["support_points"]) == SHAPE[1] * SHAPE[2]
    a = quality.segmentation_quality(fm, truth, [0, 1, 2], method="knn", seed=3)
    b = quality.segmentation_quality(fm, truth, [0, 1, 2], method="knn", seed=3)
    assert a["miou"] == b["miou"] and np.array_equal(a["support_points"], b["support_points"])


def test_simulated_interpreter_clicks_the_largest_error_and_counts_noc():
    truth = _truth()
    perfect = quality.simulated_interpreter(_features(truth, 0.0), truth == 2, max_clicks=6)
    assert perfect["ious"][0] == 1.0 and perfect["noc"] == 1 and len(perfect["ious"]) == 6
    noisy = quality.simulated_interpreter(_features(truth, 0.6), truth == 2, max_clicks=8)
    assert noisy["positives"] >= 1 and noisy["positives"] + noisy["negatives"] <= 8
    assert noisy["noc"] == next((i + 1 for i, v in enumerate(noisy["ious"]) if v >= 0.8), 9)
    old = quality.simulated_interpreter(_features(truth, 0.6), truth == 2, decision="centroid", grow=False, max_clicks=8)
    assert old["decision"] == "centroid" and len(old["ious"]) == 8


def _quick(tmp_path, capsys, *extra):
    import json

    assert cli(["bench", "--quick", "--out", str(tmp_path), *extra]) == 0
    text = capsys.readouterr().out
    result = json.loads((tmp_path / "results.json").read_text())
    return text, result


@pytest.mark.extra("plots")  # the figures
def test_bench_quick_runs_and_writes_tables_json_and_figures(tmp_path, capsys):
    text, result = _quick(tmp_path, capsys, "--readouts", "knn,linear,mlp", "--decisions", "probe,centroid")
    assert "| packages |" in text and "probe + connected" in text and "| task | knn | linear | mlp | best |" in text
    tasks = {r["task"] for r in result["segmentation"]}
    assert {"classes", "packages", "flat_spot vs rest", "salt vs rest"} <= tasks
    assert {r["method"] for r in result["segmentation"]} == {"knn", "linear", "mlp"}
    assert {r["decision"] for r in result["clicks"]} == {"probe", "centroid"}
    assert "| mean of the 4 synthetic tasks |" in text
    for name in ("bench-miou.png", "bench-noc.png", "bench-panels.png", "quality.md"):
        assert (tmp_path / name).stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.extra("torch")  # the conv-head read-out
def test_bench_quick_has_every_read_out_and_decision(tmp_path, capsys):
    text, result = _quick(tmp_path, capsys)
    assert {r["method"] for r in result["segmentation"]} == set(quality.suite.METHODS)
    assert {r["decision"] for r in result["clicks"]} == {d for d, _ in quality.suite.DECISIONS}
    assert "| task | knn | linear | forest | boosting | mlp | conv | best |" in text


def test_bench_bad_input_is_one_line(tmp_path, capsys):
    assert cli(["bench", "--cube", str(tmp_path / "x.sgy")]) == 2
    assert "--cube and --labels go together" in capsys.readouterr().err
    assert cli(["bench", "--seeds", "a,b"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert cli(["bench", "--max-clicks", "0"]) == 2
    assert cli(["bench", "--readouts", "linear,svm"]) == 2
    assert "--readouts: unknown 'svm'; choose from knn, linear" in capsys.readouterr().err
    assert cli(["bench", "--decisions", ""]) == 2
    assert "--decisions: give at least one name; choose from probe, mlp" in capsys.readouterr().err
    from napari_seisfm.io.npy import write_npy
    from napari_seisfm.synthetic import make_survey, survey_geometry

    s = make_survey((32, 32, 32), seed=0)
    cube = write_npy(tmp_path / "c.npy", s.amplitude, survey_geometry(s))
    np.save(tmp_path / "wrong.npy", np.zeros((8, 8, 8), np.int32))
    err = lambda: capsys.readouterr().err  # noqa: E731
    assert cli(["bench", "--no-synthetic", "--cube", str(cube), "--labels", str(tmp_path / "wrong.npy")]) == 2
    assert "does not match the cube" in err()
    np.save(tmp_path / "one.npy", np.zeros((32, 32, 32), np.int32))
    assert cli(["bench", "--no-synthetic", "--cube", str(cube), "--labels", str(tmp_path / "one.npy")]) == 2
    assert "only one class" in err()
    np.save(tmp_path / "float.npy", np.zeros((32, 32, 32), np.float32))
    assert cli(["bench", "--no-synthetic", "--cube", str(cube), "--labels", str(tmp_path / "float.npy")]) == 2
    assert "integer label volume" in err()


def test_bench_refuses_a_class_missing_from_the_feature_grid(tmp_path, capsys):
    from napari_seisfm.io.npy import write_npy
    from napari_seisfm.synthetic import make_survey, survey_geometry

    s = make_survey((32, 32, 32), seed=0)
    cube = write_npy(tmp_path / "c.npy", s.amplitude, survey_geometry(s))
    labels = (np.arange(32)[None, None, :] >= 16).astype(np.int32) * np.ones((32, 32, 1), np.int32)
    labels[3, 3, 3] = 5  # on an odd sample: not on the stride-2 grid
    np.save(tmp_path / "l.npy", labels)
    assert cli(["bench", "--no-synthetic", "--cube", str(cube), "--labels", str(tmp_path / "l.npy")]) == 2
    assert "class 5 has no labelled point on the stride-2 feature grid" in capsys.readouterr().err
