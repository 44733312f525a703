"""The feature store: embeddings of a cube on a strided grid, in a chunked zarr folder (docs/feature-store.md).

- :mod:`.volume`: :class:`FeatureVolume`, the store on disk (layout, ``complete`` flag, chunk-level resume,
  damaged-chunk reads), :func:`~.volume.store_state`, :func:`~.volume.open_for_resume`;
- :mod:`.lock`: :class:`StoreLock`, one writer at a time;
- :mod:`.grid`: :class:`GridSpec` (cube index <-> grid index), chunk regions, live grid points;
- :mod:`.encoding`: the one vector encoding (PCA, unit length, int8/float16/float32) and its inverse,
  shared with the in-memory :class:`~napari_seisfm.search.matrix.FeatureMatrix`, and the PCA basis;
- :mod:`.sources` and :mod:`.interchange`: feature arrays computed elsewhere, imported into a store and
  exported back out (`seisfm features`).

Words: a *store* is this folder (:class:`FeatureVolume`); a *matrix* is a store loaded into memory for
search (:class:`~napari_seisfm.search.matrix.FeatureMatrix`); a *source array* is a 4-D array file from
elsewhere (:class:`~.sources.SourceArray`).
"""

from .grid import GridSpec
from .lock import StoreLock
from .volume import FeatureVolume, StoreWarning

__all__ = ["FeatureVolume", "GridSpec", "StoreLock", "StoreWarning"]
