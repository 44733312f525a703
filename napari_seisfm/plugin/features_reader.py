"""napari reader for feature stores (``*.zarr`` with format ``seisfm-features``) and for feature arrays
computed elsewhere (4-D ``.npy``, ``.npz``, ``.h5``, zarr arrays), imported into a store first.

Shows a quick look at the embeddings: the first three principal components of the stored
vectors as an RGB volume on the feature grid, placed over the cube it belongs to
(``scale = stride * spacing``). The layer arrives hidden (its colours would cover the seismic and the
maps made from the store): one click on its eye shows it. A store extracted from another cube than the
one open in the viewer is refused with a clear message instead of being shown misaligned.

The colours (and, for an array, its import into a store) are computed off the GUI thread: the reader
hands napari a placeholder layer named "... (loading)" at once, filled when the work is done.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import SeisfmError
from ..store.volume import FORMAT, FeatureVolume
from .refusal import refused

SAMPLE_POINTS = 50_000  # vectors used to fit the colour PCA and its contrast
COLOUR_OPACITY = 0.6  # once shown, the seismic still reads through the colours
ARRAY_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5", ".zarr")  # feature arrays computed elsewhere


def get_features_reader(path):
    """Reader for a feature store directory, or None when ``path`` is something else."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if not is_feature_store(path):
        return get_feature_array_reader(path) if path.suffix.lower() == ".zarr" else None
    try:
        fv = FeatureVolume.open(path)
        check_viewer_cubes(fv, _current_viewer())
    except SeisfmError as exc:
        return refused(str(exc))
    return partial(_read, fv)


def get_feature_array_reader(path):
    """Reader for a 4-D feature array computed elsewhere (``.npy``, ``.npz``, ``.h5``, a zarr array): imported
    into a store beside it (``<name>.features.zarr``) against the cube open in the viewer, without asking
    anything, when exactly one grid fits; declined with the reason and the command to run otherwise."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.suffix.lower() not in ARRAY_SUFFIXES or is_feature_store(path) or not path.exists():
        return None
    try:
        cube_path, out = plan_for_viewer(path, _current_viewer())
    except SeisfmError as exc:
        return refused(str(exc))
    return partial(_read_array, path, cube_path, out)


def plan_for_viewer(path: Path, viewer) -> tuple[Path, Path]:
    """``(cube file, store to write)`` for importing ``path`` against the one cube of the viewer its grid fits."""
    from ..io import open_cube
    from ..store.interchange import plan_import
    from ..store.sources import open_source_array

    out = path.with_name(path.stem + ".features.zarr")
    command = f"`seisfm features import {path} --cube CUBE --out {out.name}` (with --layout/--stride/--origin if needed)"
    cubes = (
        []
        if viewer is None
        else [
            Path(layer.metadata["path"])
            for layer in viewer.layers
            if layer.metadata.get("kind") == "seismic" and layer.metadata.get("path")
        ]
    )
    if not cubes:
        raise SeisfmError(
            f"{path}: a feature array needs the cube it was computed on: open that cube (from a file) first, or run {command}"
        )
    fits, reasons = [], []
    with open_source_array(path) as src:
        for cube_path in dict.fromkeys(cubes):
            with open_cube(cube_path) as cube:
                try:
                    plan_import(src, cube, hash_source=False)
                    fits.append(cube_path)
                except SeisfmError as exc:
                    reasons.append(str(exc))
    if len(fits) != 1:
        why = reasons[0] if not fits else f"its grid fits {len(fits)} open cubes ({', '.join(p.name for p in fits)})"
        raise SeisfmError(f"{why}; run {command}")
    if out.exists():
        try:
            source = FeatureVolume.open(out, allow_partial=True).provenance.get("imported_from")
        except SeisfmError:
            source = None
        if source != str(path.resolve()):
            raise SeisfmError(
                f"{out}: exists and was not imported from {path.name}; run {command.replace(out.name, 'OTHER.zarr')}"
            )
    return fits[0], out


def _read_array(path, cube_path, out, _path=None):
    return [_load_in_background(out, _import_and_colour, path, cube_path, out, what=f"importing {path.name}")]


def _import_and_colour(path, cube_path, out, progress=None, cancel=None):
    from ..store.interchange import import_features

    fv = import_features(path, cube_path, out, progress=progress, cancel=cancel)  # resumes / reuses an earlier import
    return fv, pca_colour_layer(fv)


def _colour(fv, progress=None, cancel=None):
    return fv, pca_colour_layer(fv)


def is_feature_store(path: Path) -> bool:
    """Cheap test on the zarr group metadata, without opening the arrays."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("attributes", {}).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_viewer_cubes(fv: FeatureVolume, viewer) -> None:
    """Refuse a store when the viewer shows cubes and none of them is the one it was extracted from."""
    if viewer is None:
        return
    cubes = [
        layer
        for layer in viewer.layers
        if isinstance(layer.metadata.get("geometry"), dict) and "fingerprint" in layer.metadata["geometry"]
    ]
    if cubes and not any(layer.metadata["geometry"]["fingerprint"] == fv.cube_fingerprint for layer in cubes):
        names = ", ".join(repr(layer.name) for layer in cubes)
        geo = fv.cube_summary
        raise SeisfmError(
            f"{fv.path}: feature volume was extracted from another cube ({geo.get('source') or '?'}, shape "
            f"{geo.get('shape', '?')}); it does not match the cube in the viewer ({names})"
        )


def _read(fv: FeatureVolume, path=None):
    return [_load_in_background(fv.path, _colour, fv, what=f"colouring {fv.path.name}", fv=fv)]


def _load_in_background(store, fn, *args, what: str, fv: FeatureVolume | None = None):
    """A hidden placeholder layer now, filled by ``fn(*args) -> (fv, layer data)`` in a worker (napari
    readers run on the GUI thread). Without a viewer to put the result in, the work runs here."""
    viewer = _current_viewer()
    name = f"{Path(store).stem} PCA colours"
    if viewer is None:
        return fn(*args)[1]
    from .widgets._jobs import background_job

    token = f"{name}:{id(args)}"
    meta = {"kind": "features", "path": str(store), "loading": token}
    if fv is not None:
        meta.update(feature_volume=info(fv), survey=fv.cube_fingerprint)
    placement = _placement(fv) if fv is not None else {}
    placeholder = np.zeros((1, 1, 1, 3), np.uint8)

    def done(result):
        _, (rgb, kwargs, _) = result
        layer = _placeholder(viewer, token)
        if layer is None:  # removed meanwhile
            return
        layer.data = rgb
        for key in ("scale", "translate"):
            setattr(layer, key, kwargs[key])
        layer.metadata = kwargs["metadata"]
        layer.name = kwargs["name"]
        layer.contrast_limits = kwargs["contrast_limits"]

    def failed(exc):
        layer = _placeholder(viewer, token)
        if layer is not None:
            viewer.layers.remove(layer)
        from .widgets._notify import report

        report(exc, what)

    background_job(viewer, fn, *args, what=what, on_done=done, on_error=failed)
    kwargs = {
        "name": f"{name} (loading)",
        "rgb": True,
        "contrast_limits": (0, 255),
        "visible": False,
        "opacity": COLOUR_OPACITY,
        "blending": "translucent",
        "metadata": meta,
        **placement,
    }
    kwargs.pop("axis_labels", None)
    return placeholder, kwargs, "image"


def _placeholder(viewer, token):
    for layer in viewer.layers:
        if layer.metadata.get("loading") == token:
            return layer
    return None


def pca_colour_layer(fv: FeatureVolume, sample_points: int = SAMPLE_POINTS):
    """``(rgb, kwargs, "image")``: the first three principal components of the stored vectors as colours
    (uint8), hidden and translucent: shown, they would cover the seismic and the maps."""
    mean, comps, lo, hi = _colour_basis(fv, sample_points)
    rgb = np.zeros((*fv.grid.shape, 3), np.uint8)
    step = fv.chunks[0]
    for i0 in range(0, fv.grid.shape[0], step):  # one slab of chunks at a time: bounded memory
        sl = slice(i0, min(i0 + step, fv.grid.shape[0]))
        v = fv.decode(fv.embeddings[sl])
        ok = np.asarray(fv.valid[sl], bool)
        c = np.clip(((v - mean) @ comps.T - lo) / (hi - lo), 0.0, 1.0)
        rgb[sl] = np.where(ok[..., None], np.round(255 * c), 0).astype(np.uint8)
    kwargs = {
        "name": f"{fv.path.stem} PCA colours",
        "rgb": True,
        "contrast_limits": (0, 255),
        "blending": "translucent",
        "visible": False,
        "opacity": COLOUR_OPACITY,
        "metadata": {"kind": "features", "path": str(fv.path), "feature_volume": info(fv), "survey": fv.cube_fingerprint},
        **_placement(fv),
    }
    return rgb, kwargs, "image"


def info(fv: FeatureVolume) -> dict:
    """What a layer needs to remember about its store (JSON-able)."""
    return {
        "path": str(fv.path),
        "grid_shape": list(fv.grid.shape),
        "stride": list(fv.grid.stride),
        "origin": list(fv.grid.origin),
        "dim": fv.dim,
        "dtype": fv.dtype,
        "model": fv.model,
        "checkpoint_sha256": fv.checkpoint_sha256,
        "cube_fingerprint": fv.cube_fingerprint,
        "cube_geometry": fv.cube_summary,
        "normalisation": fv.normalisation,
        "pca": fv.pca_components is not None,
        "complete": fv.complete,
    }


def _colour_basis(fv: FeatureVolume, sample_points: int):
    """PCA (3 components) and 1st/99th percentile contrast from a regular subsample of the grid."""
    n = fv.grid.size
    step = max(1, int(round((n / sample_points) ** (1 / 3))))
    v = fv.decode(fv.embeddings[::step, ::step, ::step]).reshape(-1, fv.dim)
    v = v[np.asarray(fv.valid[::step, ::step, ::step], bool).reshape(-1)]
    if len(v) < 2:
        raise SeisfmError(f"{fv.path}: no valid embeddings to show")
    mean = v.mean(axis=0)
    _, _, vt = np.linalg.svd(v - mean, full_matrices=False)
    comps = np.zeros((3, fv.dim), np.float32)
    comps[: min(3, len(vt))] = vt[:3]
    proj = (v - mean) @ comps.T
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return mean.astype(np.float32), comps, lo.astype(np.float32), hi.astype(np.float32)


def _placement(fv: FeatureVolume) -> dict:
    """scale/translate in survey units (from the store's copy of the cube geometry), time stretched by
    the current viewer's vertical exaggeration so that it lies on the cube shown there."""
    from ..cube import geometry_from_summary
    from ..display import world_transform
    from .view import exaggeration

    try:
        geometry = geometry_from_summary(fv.cube_summary)
    except SeisfmError:  # no geometry recorded: grid in cube-index units
        return {"scale": tuple(float(s) for s in fv.grid.stride), "translate": tuple(float(o) for o in fv.grid.origin)}
    return world_transform(
        geometry, fv.grid.stride, fv.grid.origin, exaggeration=exaggeration(_current_viewer(), fv.cube_fingerprint)
    )


def _current_viewer():
    try:
        import napari

        return napari.current_viewer()
    except Exception:  # no Qt / no viewer: nothing to check against  # noqa: BLE001
        return None


def _notify(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)
