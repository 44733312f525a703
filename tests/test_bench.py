"""The quality protocol's metrics against brute force and analytic cases."""

import numpy as np

from napari_seisfm.bench import auc, best_iou, iou


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
