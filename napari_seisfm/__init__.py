"""napari-seisfm: interactive seismic interpretation with foundation-model embeddings.

The core (cube, io, store, encoders, extract, search, codecs, synthetic) imports neither Qt nor
napari; the napari glue (reader, writer, sample data, dock widgets named in ``napari.yaml``) lives
in the ``plugin`` sub-package.
"""

__version__ = "0.1.0"
