"""File > Open Sample: a synthetic survey with its ground-truth labels."""

from __future__ import annotations

import numpy as np

from ..display import world_transform
from ..synthetic import make_survey, survey_geometry


def synthetic_layers(shape=(128, 128, 128), seed=0):
    """Layer data for a synthetic survey: seismic in gray plus one Labels layer of geological classes."""
    survey = make_survey(shape, seed=seed)
    geometry = survey_geometry(survey)
    transform = world_transform(geometry, exaggeration=_current_exaggeration(geometry))
    limit = float(np.percentile(np.abs(survey.amplitude), 99.5)) or 1.0  # robust: seabed and boulders are outliers
    seismic = (
        survey.amplitude,
        {"name": f"synthetic seed {seed}", "colormap": "gray", "contrast_limits": (-limit, limit),
         "metadata": {"kind": "seismic", "path": None, "geometry": geometry.summary(), "synthetic_seed": seed}, **transform},
        "image",
    )
    labels = (
        survey.labels,
        {"name": "ground truth", "opacity": 0.4, "metadata": {"classes": dict(survey.classes), "geometry": geometry.summary()}, **transform},
        "labels",
    )
    _orient_current_viewer()
    return [seismic, labels]


def _current_exaggeration(geometry) -> float:
    """The current viewer's vertical exaggeration (the default for this survey if it has none): both
    layers are made with it, so they stay aligned."""
    import napari

    from ..display import ensure_exaggeration

    return ensure_exaggeration(napari.current_viewer(), geometry.shape, geometry.spacing)


def _orient_current_viewer():
    import napari

    from ..display import orient_when_added

    viewer = napari.current_viewer()
    if viewer is not None:
        orient_when_added(viewer)
