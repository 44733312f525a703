"""Labelled 2-D images (seismic sections, image patches such as the TGS salt set) and their embeddings.

An image is a section: the cube axes (crossline, sample) of a survey with a single inline. The
arrays here are in that *cube order*, axis 1 = trace position and axis 2 = time/depth sample
increasing downward, so the embedders see the time axis where they expect it (the Hilbert
transform, the spectral bands and the energy above/below run along it).

Image files store pictures the other way round, as displayed: rows = depth, columns = traces
(the TGS patches: the layering runs along the rows and salt bodies lie under their bright top).
:func:`load_image_set` therefore transposes images and masks on load; ``set.images[i].T`` is the
picture as stored. :func:`embed_images` takes cube order and returns vectors on the stride grid
of that order, aligned with ``set.masks[:, ::s, ::s]``.

Each image is standardised on its own (the NCS recipe of the extraction: unit variance, clip at 3
std), mirrored at its borders like a cube edge, and embedded natively as one section (no mirrored
pseudo-inlines) by ``Embedder.embed_sections``: many sections per call for the attributes, one
inline section per image for 2d ViT models, the section mirrored into identical neighbours for 2.5D.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import progress as progress_
from .encoders.registry import get_embedder
from .errors import SeisfmCancelled, SeisfmError
from .extract import CLIP, mirror


@dataclass
class ImageSet:
    """Images and per-pixel labels in cube order: ``(N, trace, sample)``, the file's arrays transposed."""

    images: np.ndarray  # float32 (N, trace, sample)
    masks: np.ndarray  # int32 (N, trace, sample): class per pixel
    ids: np.ndarray  # str (N,): from the file's ``ids``, else "0" .. "N-1"
    name: str  # the file's stem
    extra: dict = field(default_factory=dict)  # the file's other per-image values, 1-D of length N (TGS ``depth_ft``)

    def __len__(self) -> int:
        return len(self.images)


def load_image_set(path) -> ImageSet:
    """Read an ``.npz`` with ``images`` and ``masks`` (N x H x W, rows = depth/time as displayed).

    Loaded whole (image sets are small) and transposed to cube order (module doc). Every problem
    with the file is a one-line :class:`SeisfmError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise SeisfmError(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SeisfmError(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise SeisfmError(f"{path}: a single .npy array, not an .npz archive with 'images' and 'masks'")
    with archive:
        arrays = {}
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise SeisfmError(f"{path}: array {key!r} is unreadable ({exc})") from None
    for key in ("images", "masks"):
        if key not in arrays:
            raise SeisfmError(f"{path}: no {key!r} array (has: {', '.join(sorted(arrays)) or 'nothing'})")
    images, masks = arrays.pop("images"), arrays.pop("masks")
    if images.ndim != 3:
        raise SeisfmError(f"{path}: 'images' must be N x H x W, got shape {images.shape}")
    if masks.shape != images.shape:
        raise SeisfmError(f"{path}: 'masks' shape {masks.shape} differs from 'images' shape {images.shape}")
    if len(images) == 0:
        raise SeisfmError(f"{path}: holds no images")
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool) or np.iscomplexobj(images):
        raise SeisfmError(f"{path}: 'images' must be real numbers, got {images.dtype}")
    if not (np.issubdtype(masks.dtype, np.integer) or masks.dtype == bool):
        raise SeisfmError(f"{path}: 'masks' must be integer or bool labels, got {masks.dtype}")
    images = images.astype(np.float32)
    bad = ~np.isfinite(images)
    if bad.any():
        first = int(np.flatnonzero(bad.any(axis=(1, 2)))[0])
        raise SeisfmError(f"{path}: 'images' holds {int(bad.sum())} NaN or infinite values (first in image {first})")
    n = len(images)
    ids = arrays.pop("ids", None)
    if ids is None:
        ids = np.arange(n).astype(str)
    elif ids.shape != (n,):
        raise SeisfmError(f"{path}: 'ids' has shape {ids.shape}, expected ({n},)")
    extra = {k: v for k, v in arrays.items() if v.shape == (n,)}
    return ImageSet(
        images=np.ascontiguousarray(images.transpose(0, 2, 1)),
        masks=np.ascontiguousarray(masks.transpose(0, 2, 1).astype(np.int32)),
        ids=ids.astype(str),
        name=path.stem,
        extra=extra,
    )


def embed_images(
    images,
    *,
    model: str | None = None,
    stride=1,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    embedder=None,
) -> np.ndarray:
    """Embed every ``stride``-th pixel of each image: float32 ``(N, H', W', dim)``, ``H' = ceil(H / s)``.

    ``images``: an :class:`ImageSet` or an ``(N, H, W)`` array in cube order, axis 1 = trace and
    axis 2 = time/depth sample, as :func:`load_image_set` returns them (a picture with rows = depth
    must be transposed first). Grid point ``(a, b)`` of image ``i`` is pixel ``(a * s0, b * s1)``. ``stride``: one number or (trace, sample).
    ``model``: registry id (default: attributes); ``embedder`` overrides it with a ready instance.
    Models that need neighbouring lines (2.5d, 3d) are refused: an image is one section. A 2d ViT
    whose card fuses inline and crossline sections embeds the image as its inline section only.
    ``progress(done, total)`` counts images; ``cancel`` (Event or callable) is checked between
    images and raises :class:`SeisfmCancelled`. A constant (blank) image standardises to zeros.
    """
    x = getattr(images, "images", images)
    x = np.asarray(x)
    if x.ndim != 3 or 0 in x.shape:
        raise SeisfmError(f"images must be a non-empty N x H x W array, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise SeisfmError(f"images must be real numbers, got {x.dtype}")
    s = _stride(stride)
    if embedder is None:
        embedder = get_embedder(model)
    embedder.check_sections()
    halo = tuple(embedder.halo[1:])
    n, h, w = x.shape
    grid = (-(-h // s[0]), -(-w // s[1]))
    _check_fits(n * grid[0] * grid[1] * embedder.dim * 4, n)
    rows, cols = (mirror(np.arange(-hh, m + hh), m) for m, hh in zip((h, w), halo))
    out = np.empty((n, *grid, embedder.dim), np.float32)
    progress_.report(progress, 0, n)
    for i in range(n):  # one image per call: stacking 50 TGS patches per call measured no faster
        if progress_.cancelled(cancel):
            raise SeisfmCancelled(f"stopped after {i}/{n} images")
        out[i] = embedder.embed_sections(standardise(x[i])[np.ix_(rows, cols)][None], s)[0]
        progress_.report(progress, i + 1, n)
    return out


def standardise(image: np.ndarray) -> np.ndarray:
    """One image as the extraction standardises a cube: zero mean, unit variance, clipped at 3 std.
    Non-finite pixels become the mean; a constant image becomes zeros."""
    v = np.asarray(image, np.float64)
    ok = np.isfinite(v)
    live = v[ok]
    mean = float(live.mean()) if live.size else 0.0
    std = float(live.std()) if live.size else 0.0
    if not np.isfinite(std) or std <= 0:
        return np.zeros(v.shape, np.float32)
    v = np.where(ok, v, mean)
    return np.clip((v - mean) / std, -CLIP, CLIP).astype(np.float32)


def _stride(stride) -> tuple[int, int]:
    try:
        s = (int(stride),) * 2 if np.isscalar(stride) else tuple(int(v) for v in stride)
    except (TypeError, ValueError):
        s = ()
    if len(s) != 2 or min(s) < 1:
        raise SeisfmError(f"stride {stride!r}: expected one positive integer or two (trace, sample)")
    return s


def _check_fits(nbytes: int, n: int) -> None:
    from .cube import available_memory

    free = available_memory()
    if nbytes >= 2**26 and free and nbytes > 0.5 * free:
        raise SeisfmError(
            f"embeddings of {n} images would take {nbytes / 2**30:.1f} GiB, over half the {free / 2**30:.1f} GiB "
            "of free memory; use a larger stride or fewer images per call"
        )
