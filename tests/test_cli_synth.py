"""`seisfm synth` writes a synthetic survey through the real SEG-Y, .sgz and .npy writers."""

import json

import numpy as np
import pytest

from napari_seisfm.cli import main
from napari_seisfm.io import open_cube
from napari_seisfm.synthetic import make_survey

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)


@pytest.mark.parametrize("fmt", ["sgy", "sgz", "npy"])
def test_synth_round_trip(tmp_path, fmt):
    out = tmp_path / f"s.{fmt}"
    assert main(["synth", str(out), "--size", "40,36,48", "--seed", "3"]) == 0
    survey = make_survey((40, 36, 48), seed=3)
    cube = open_cube(out)
    labels = open_cube(tmp_path / f"s_labels.{fmt}")
    assert cube.shape == labels.shape == (40, 36, 48)
    g = cube.geometry
    assert (g.ilines[0], g.xlines[0], g.spacing[2]) == (survey.first_inline, survey.first_crossline, survey.sample_interval_ms)
    tol = 0.05 * np.abs(survey.amplitude).max() if fmt == "sgz" else 0  # ZFP at 8 bits per voxel
    assert np.abs(cube[:] - survey.amplitude).max() <= tol
    assert np.array_equal(np.rint(labels[:]).astype(np.uint8), survey.labels)  # labels survive exactly (16-bit ZFP too)
    assert json.loads((tmp_path / "s_classes.json").read_text()) == survey.classes


def test_synth_bad_arguments(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x.txt")]) == 2
    assert "--format" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x.sgy"), "--size", "ten"]) == 2
    assert main(["synth", str(tmp_path / "x.sgy"), "--size", "8"]) == 2  # below the generator's minimum
    assert not list(tmp_path.iterdir())
