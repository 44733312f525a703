"""napari-seisfm: interactive seismic interpretation with foundation-model embeddings.

The core (cube, features, encoders, extract, search, codecs, synthetic) imports neither Qt nor
napari; the napari glue lives in ``widgets/`` and the ``_reader``/``_writer``/``_sample_data``
modules named in ``napari.yaml``.
"""

__version__ = "0.1.0"
