"""File > Open Sample: a synthetic survey with its ground-truth labels."""

from __future__ import annotations

import numpy as np

from ..display import world_transform
from ..synthetic import make_survey, survey_geometry


def synthetic_layers(shape=(128, 128, 128), seed=0):
    """Layer data for a synthetic survey: seismic in gray plus one Labels layer of geological classes."""
    survey = make_survey(shape, seed=seed)
    geometry = survey_geometry(survey)
    survey_id = geometry.fingerprint()
    transform = world_transform(geometry, exaggeration=_current_exaggeration(geometry))
    limit = float(np.percentile(np.abs(survey.amplitude), 99.5)) or 1.0  # robust: seabed and boulders are outliers
    seismic = (
        survey.amplitude,
        {
            "name": f"synthetic seed {seed}",
            "colormap": "gray",
            "contrast_limits": (-limit, limit),
            "metadata": {
                "kind": "seismic",
                "path": None,
                "geometry": geometry.summary(),
                "synthetic_seed": seed,
                "survey": survey_id,
            },
            **transform,
        },
        "image",
    )
    labels = (
        survey.labels,
        {
            "name": "ground truth",
            "opacity": 0.4,
            "visible": False,  # the truth hides the seismic: one click shows it
            "metadata": {"classes": dict(survey.classes), "geometry": geometry.summary(), "survey": survey_id},
            **transform,
        },
        "labels",
    )
    _orient_current_viewer()
    return [seismic, labels]


def _current_exaggeration(geometry) -> float:
    """This survey's vertical exaggeration in the current viewer (the default if it is new there): both
    layers are made with it, so they stay aligned."""
    import napari

    from .view import ensure_exaggeration

    return ensure_exaggeration(napari.current_viewer(), geometry.fingerprint(), geometry.shape, geometry.spacing)


def _orient_current_viewer():
    import napari

    from .view import orient_when_added

    viewer = napari.current_viewer()
    if viewer is not None:
        orient_when_added(viewer)
