"""seismic-zfp ``.sgz`` cubes: ZFP-compressed, read in blocks without decompressing the whole file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..cube import Cube, Geometry
from ..errors import SeisfmError


def open_sgz(path, *, sample_unit: str = "ms") -> Cube:
    from seismic_zfp.read import SgzReader

    path = Path(path)
    if path.stat().st_size == 0:
        raise SeisfmError(f"{path}: empty file (0 bytes)")
    try:
        reader = SgzReader(str(path))
    except Exception as exc:
        raise SeisfmError(f"{path}: seismic-zfp cannot read it: {' '.join(str(exc).split()) or exc.__class__.__name__}") from None
    try:
        if getattr(reader, "is_4d", False):
            raise SeisfmError(f"{path}: pre-stack data ({reader.n_offsets} offsets); napari-seisfm needs a post-stack cube")
        samples = np.asarray(reader.zslices, np.float64)
        notes = []
        if reader.is_2d:
            backend = SgzTraces(reader)
            ilines, xlines, kind, dead = np.array([1]), np.arange(1, reader.tracecount + 1), "2d", None
        else:
            backend = SgzBackend(reader)
            ilines, xlines, kind = np.asarray(reader.ilines), np.asarray(reader.xlines), "3d"
            dead = None
            if not reader.structured:
                reader.get_unstructured_mask()  # fills reader.mask (the method itself returns None)
                dead = ~np.asarray(reader.mask, bool).reshape(len(ilines), len(xlines))
                notes.append(f"{int(dead.sum())} missing traces (dead-trace mask)")
            if 1 in (len(ilines), len(xlines)):
                kind = "2d"
    except SeisfmError:
        reader.close()
        raise
    except Exception as exc:
        reader.close()
        raise SeisfmError(f"{path}: seismic-zfp cannot read its geometry: {exc}") from None
    geometry = Geometry(ilines=ilines, xlines=xlines, samples=samples, sample_unit=sample_unit, kind=kind,
                        dead=dead if dead is not None and dead.any() else None, source=str(path), notes=tuple(notes))
    info = {"format": f"seismic-zfp, {reader.rate} bits per voxel", "bits_per_voxel": reader.rate, "source": str(path)}
    return Cube(backend, geometry, path, info)


class SgzBackend:
    def __init__(self, reader):
        self.reader = reader
        self.shape = (len(reader.ilines), len(reader.xlines), len(reader.zslices))

    def plane(self, axis: int, index: int) -> np.ndarray:
        r = self.reader
        read = (r.read_inline, r.read_crossline, r.read_zslice)[axis]
        return np.asarray(read(index), np.float32)

    def read(self, il, xl, t):
        return np.asarray(self.reader.read_subvolume(il.start, il.stop, xl.start, xl.stop, t.start, t.stop), np.float32)

    def close(self):
        self.reader.close()


class SgzTraces:
    """A 2D .sgz line: traces one by one (seismic-zfp has no sub-volume reads for 2D)."""

    def __init__(self, reader):
        self.reader = reader
        self.shape = (1, reader.tracecount, len(reader.zslices))

    def read(self, il, xl, t):
        out = np.zeros((il.stop - il.start, xl.stop - xl.start, t.stop - t.start), np.float32)
        if il.start == 0 and il.stop >= 1:
            for k, j in enumerate(range(xl.start, xl.stop)):
                out[0, k] = np.asarray(self.reader.get_trace(j), np.float32)[t]
        return out

    def close(self):
        self.reader.close()


def write_sgz(path, data: np.ndarray, geometry: Geometry, *, bits_per_voxel: int = 8) -> Path:
    """Compress a cube to .sgz (ZFP fixed rate). 8 bits per voxel keeps ~40 dB SNR on seismic."""
    from seismic_zfp.conversion import NumpyConverter

    path = Path(path)
    data = np.ascontiguousarray(data, np.float32)
    if data.shape != geometry.shape:
        raise SeisfmError(f"{path}: data shape {data.shape} does not match the geometry {geometry.shape}")
    tmp = path.with_name(path.name + ".partial")
    try:
        conv = NumpyConverter(data, ilines=np.asarray(geometry.ilines), xlines=np.asarray(geometry.xlines),
                              samples=np.asarray(geometry.samples, np.float64))
        conv.run(str(tmp), bits_per_voxel=bits_per_voxel)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise SeisfmError(f"{path}: could not write .sgz: {exc}") from None
    os.replace(tmp, path)
    return path
