"""seismic-zfp ``.sgz`` cubes: ZFP-compressed, read in blocks without decompressing the whole file."""

from __future__ import annotations

import math
import struct
import threading
from pathlib import Path

import numpy as np

from ..cube import Cube, Geometry, mask_nonfinite_traces
from ..errors import SeisfmError
from .output import atomic_output, check_free_space, prepare_output, write_failed

BLOCK = 4096  # seismic-zfp's disk block: header blocks and compressed data come in these
MAX_SAMPLES = 1_000_000
MAX_LINES = 10_000_000  # inlines or crosslines; real surveys have a few thousand
MAX_HEADER_BLOCKS = 64
MAX_HEADER_ARRAYS = 128  # one per SEG-Y trace header word at most


def check_header(path: Path) -> dict:
    """Check an .sgz header against the file size before seismic-zfp allocates anything from it.

    seismic-zfp trusts the header: a flipped byte in a line count makes it build a coordinate list
    of billions of entries, and a header that disagrees with the file size reads past the end or
    at the wrong offset (wrong data, no error). The layout (little-endian, from seismic_zfp.read):
    header blocks, then the compressed data, then one array of per-trace header values per stored
    header word; each size follows from the dimensions, so the file size must match exactly.
    """
    size = path.stat().st_size
    if size == 0:
        raise SeisfmError(f"{path}: empty file (0 bytes)")
    if size < BLOCK:
        raise SeisfmError(f"{path}: truncated .sgz ({size} bytes; the header alone takes {BLOCK})")
    with open(path, "rb") as f:
        head = f.read(BLOCK)
    u32 = lambda a: struct.unpack_from("<I", head, a)[0]  # noqa: E731
    bad = f"{path}: not a readable .sgz file:"
    if head[:2] == b"\xc3\x40":
        raise SeisfmError(f"{bad} it looks like SEG-Y (EBCDIC text header); rename it to .sgy")
    n_blocks, ns, nx, ni = u32(0), u32(4), u32(8), u32(12)
    if not 1 <= n_blocks <= MAX_HEADER_BLOCKS:
        raise SeisfmError(f"{bad} {n_blocks} header blocks declared")
    if u32(128):
        raise SeisfmError(f"{path}: pre-stack data ({u32(128)} offsets); napari-seisfm needs a post-stack cube")
    if not 1 <= ns <= MAX_SAMPLES:
        raise SeisfmError(f"{bad} {ns} samples per trace declared")
    raw_rate = struct.unpack_from("<i", head, 40)[0]
    if raw_rate == 0 or not -64 <= raw_rate <= 64:
        raise SeisfmError(f"{bad} compression rate {raw_rate} declared")
    rate = raw_rate if raw_rate > 0 else 1 / -raw_rate
    shape = [u32(44), u32(48), u32(52)]
    if (shape[0] == 0 or shape[1] == 0) and shape[2] == 0:  # files from the first versions
        shape = [4, 4, int(2048 // rate)]
    if min(shape) < 1 or math.prod(shape) * rate != 8 * BLOCK:
        raise SeisfmError(f"{bad} block shape {tuple(shape)} at {rate:g} bits per voxel is not one {BLOCK}-byte disk block")
    two_d = shape[0] == 1
    from seismic_zfp.version import SeismicZfpVersion

    new = SeismicZfpVersion(u32(72)) > SeismicZfpVersion("0.2.1")  # the rule seismic-zfp's reader applies
    if two_d:
        traces = u32(68)
        grid = traces
        if not 1 <= traces <= MAX_LINES:
            raise SeisfmError(f"{bad} {traces} traces declared for a 2D line")
    else:
        if not (1 <= ni <= MAX_LINES and 1 <= nx <= MAX_LINES):
            raise SeisfmError(f"{bad} {ni} inlines x {nx} crosslines declared")
        grid = ni * nx
        traces = u32(68) if new else grid
        if not 1 <= traces <= grid:
            raise SeisfmError(f"{bad} {traces} traces declared on a {ni}x{nx} grid")
    padded = [-(-n // b) * b for n, b in zip((1 if two_d else ni, traces if two_d else nx, ns), shape)]
    data_blocks = -(-int(math.prod(padded) * rate) // 8 // BLOCK)
    entry, n_arrays = u32(60), u32(64)
    if u32(56) != data_blocks:
        raise SeisfmError(f"{bad} {u32(56)} blocks of compressed data declared; its dimensions need {data_blocks}")
    if entry != 4 * grid or n_arrays > MAX_HEADER_ARRAYS:
        raise SeisfmError(f"{bad} trace header arrays of {entry} bytes x {n_arrays} declared for {grid} traces")
    if n_blocks >= 2 and size >= 2 * BLOCK:  # the source SEG-Y binary header, copied into block 2
        with open(path, "rb") as f:
            f.seek(BLOCK + 3200 + 20)
            segy_ns = f.read(2)
        copies = {int.from_bytes(segy_ns, "big"), int.from_bytes(segy_ns, "little")}
        if copies != {0} and ns <= 0xFFFF and ns not in copies:
            raise SeisfmError(
                f"{bad} {ns} samples per trace declared, {int.from_bytes(segy_ns, 'big')} in its SEG-Y binary header"
            )
    padded_entry = -(-entry // 512) * 512 if new else entry
    expected = (n_blocks + data_blocks) * BLOCK + n_arrays * padded_entry
    # NumpyConverter (write_sgz before it passed int32 line numbers) stores int64 header arrays
    wide = (n_blocks + data_blocks) * BLOCK + n_arrays * (-(-2 * entry // 512) * 512)
    if size not in (expected, wide):
        raise SeisfmError(
            f"{path}: truncated or inconsistent .sgz: its header describes {expected} bytes "
            f"({n_blocks} header blocks, {data_blocks} data blocks, {n_arrays} trace header arrays), the file has {size}"
        )
    return {
        "samples": ns,
        "inlines": ni,
        "crosslines": nx,
        "traces": traces,
        "two_d": two_d,
        "wide_headers": size == wide and size != expected,
    }


def open_sgz(path, *, sample_unit: str = "ms") -> Cube:
    from seismic_zfp.read import SgzReader

    path = Path(path)
    declared = check_header(path)
    try:
        reader = SgzReader(str(path))
    except Exception as exc:  # noqa: BLE001
        raise SeisfmError(f"{path}: seismic-zfp cannot read it: {' '.join(str(exc).split()) or exc.__class__.__name__}") from None
    try:
        if getattr(reader, "is_4d", False):
            raise SeisfmError(f"{path}: pre-stack data ({reader.n_offsets} offsets); napari-seisfm needs a post-stack cube")
        samples = np.asarray(reader.zslices, np.float64)
        _check_axes(path, reader, samples, declared)
        _check_coordinates(path, reader, samples, per_trace=not declared["wide_headers"])
        notes = []
        if reader.is_2d:
            backend = SgzTraces(reader)
            ilines, xlines, kind, dead = np.array([1]), np.arange(1, reader.tracecount + 1), "2d", None
        else:
            backend = SgzBackend(reader)
            ilines, xlines, kind = np.asarray(reader.ilines), np.asarray(reader.xlines), "3d"
            dead = None
            if not reader.structured:
                if not hasattr(reader.segy_traceheader_template.get(189), "__index__"):
                    raise SeisfmError(f"{path}: unstructured .sgz without a stored inline header array (no dead-trace mask)")
                reader.get_unstructured_mask()  # fills reader.mask (the method itself returns None)
                dead = ~np.asarray(reader.mask, bool).reshape(len(ilines), len(xlines))
                if int((~dead).sum()) != reader.tracecount:
                    raise SeisfmError(
                        f"{path}: inconsistent .sgz: {int((~dead).sum())} live traces in the mask, {reader.tracecount} declared"
                    )
                notes.append(f"{int(dead.sum())} missing traces (dead-trace mask)")
            if 1 in (len(ilines), len(xlines)):
                kind = "2d"
    except SeisfmError:
        reader.close()
        raise
    except Exception as exc:  # noqa: BLE001
        reader.close()
        raise SeisfmError(f"{path}: seismic-zfp cannot read its geometry: {exc}") from None
    geometry = Geometry(
        ilines=ilines,
        xlines=xlines,
        samples=samples,
        sample_unit=sample_unit,
        kind=kind,
        dead=dead if dead is not None and dead.any() else None,
        source=str(path),
        notes=tuple(notes),
    )
    info = {"format": f"seismic-zfp, {reader.rate} bits per voxel", "bits_per_voxel": reader.rate, "source": str(path)}
    try:
        return mask_nonfinite_traces(Cube(backend, geometry, path, info))
    except SeisfmError:
        reader.close()
        raise
    except Exception as exc:  # noqa: BLE001
        reader.close()
        raise SeisfmError(
            f"{path}: seismic-zfp cannot read its data: {' '.join(str(exc).split()) or exc.__class__.__name__}"
        ) from None


def _check_axes(path, reader, samples, declared) -> None:
    """The coordinate lists seismic-zfp built must match the declared counts and be increasing."""
    axes = [("samples", samples, declared["samples"])]
    if not declared["two_d"]:
        axes += [("inlines", reader.ilines, declared["inlines"]), ("crosslines", reader.xlines, declared["crosslines"])]
    for name, values, n in axes:
        values = np.asarray(values, np.float64)
        if len(values) != n or not np.isfinite(values).all() or (n > 1 and not (np.diff(values) > 0).all()):
            raise SeisfmError(f"{path}: inconsistent .sgz: the {name} axis is not {n} increasing numbers")


SAMPLE_INTERVAL = (1e-3, 1e5)  # ms or m: a plausible sample interval (1 us .. 100 s)
MAX_COORDINATE = 1e7  # |first sample| in ms or m
MAX_LINE_STEP = 1_000_000


def _check_coordinates(path, reader, samples, per_trace: bool = True) -> None:
    """Coordinates must be plausible and agree with the copies the file keeps of them.

    The data blocks do not depend on the header's first sample, sample interval or line numbers and
    steps, so a flipped bit there reads the right amplitudes at the wrong place (a sample interval of
    5e-324 ms, inline 67108869). Refused: a sample interval or first sample outside plausible limits, a
    line step over a million; a sample interval that differs from both the SEG-Y binary header and the trace
    headers copied into the file (either may be the one segyio used), a first sample other than the delay
    every trace header records; line numbers that differ from the per-trace inline and
    crossline header arrays at nine grid positions (corners, edges' middles, centre; not in files whose header
    arrays were stored 64 bits wide, which seismic-zfp reads as 32-bit garbage).
    """
    bad = f"{path}: inconsistent .sgz header:"
    if len(samples) > 1:
        dt = float(samples[1] - samples[0])
        if not SAMPLE_INTERVAL[0] <= dt <= SAMPLE_INTERVAL[1]:
            raise SeisfmError(f"{bad} sample interval {dt:g} is not between {SAMPLE_INTERVAL[0]:g} and {SAMPLE_INTERVAL[1]:g}")
    else:
        dt = None
    if not abs(float(samples[0])) <= MAX_COORDINATE:
        raise SeisfmError(f"{bad} first sample {float(samples[0]):g} is beyond {MAX_COORDINATE:g}")
    try:
        binary = reader.get_file_binary_header()
        segy_dt = int(binary[3217])
    except Exception:  # noqa: BLE001
        segy_dt = 0
    template = getattr(reader, "segy_traceheader_template", {}) or {}
    trace_dt = template.get(117)  # the trace headers' sample interval, when the same in every trace
    copies = [v for v in (segy_dt, trace_dt if type(trace_dt) is int else 0) if v]  # noqa: E721
    if copies and dt is not None and all(abs(dt * 1000 - v) > 0.5 for v in copies):
        raise SeisfmError(f"{bad} sample interval {dt:g} ms, {copies[0] / 1000:g} ms in its copy of the SEG-Y headers")
    delay = template.get(109)
    if segy_dt and type(delay) is int and abs(float(samples[0]) - delay) > 1e-6:  # noqa: E721 (a FileOffset is an int too)
        raise SeisfmError(f"{bad} first sample {float(samples[0]):g}, {delay} in every trace header (delay recording time)")
    if reader.is_2d:
        return
    ilines, xlines = np.asarray(reader.ilines, np.int64), np.asarray(reader.xlines, np.int64)
    for name, values in (("inline", ilines), ("crossline", xlines)):
        if len(values) > 1 and not 1 <= int(values[1] - values[0]) <= MAX_LINE_STEP:
            raise SeisfmError(f"{bad} {name} step {int(values[1] - values[0])}")
    if not per_trace:
        return
    ni, nx = len(ilines), len(xlines)
    picks = [(i, j) for i in sorted({0, ni // 2, ni - 1}) for j in sorted({0, nx // 2, nx - 1})]
    for field, name, axis in ((189, "inline", 0), (193, "crossline", 1)):
        offset = template.get(field)
        if offset is None or type(offset) is int:  # noqa: E721 - constant (or absent): nothing per trace to compare
            continue
        for i, j in picks:
            try:
                value = int(np.frombuffer(reader.file.read_range(reader.file, int(offset) + 4 * (i * nx + j), 4), "<i4")[0])
            except Exception:  # noqa: BLE001
                return
            expect = int((ilines, xlines)[axis][(i, j)[axis]])
            if value != 0 and value != expect:  # 0: no trace there (irregular surveys)
                raise SeisfmError(f"{bad} {name} {expect} at grid position ({i}, {j}), {value} in that trace's header")


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

    path = prepare_output(path)
    data = np.ascontiguousarray(data, np.float32)
    if data.shape != geometry.shape:
        raise SeisfmError(f"{path}: data shape {data.shape} does not match the geometry {geometry.shape}")
    with atomic_output(path) as tmp:
        try:
            # int32 line numbers: seismic-zfp reads its trace header arrays as int32 whatever was written
            conv = NumpyConverter(
                data,
                ilines=np.asarray(geometry.ilines, np.intc),
                xlines=np.asarray(geometry.xlines, np.intc),
                samples=np.asarray(geometry.samples, np.float64),
            )
            conv.run(str(tmp), bits_per_voxel=bits_per_voxel)
        except OSError:
            raise  # read-only, disk full: named by the output, not its temporary file
        except Exception as exc:  # noqa: BLE001
            raise SeisfmError(f"{path}: could not write .sgz: {' '.join(str(exc).split())}") from None
    return path


BITS = (1, 2, 4, 8, 16)  # fixed ZFP rates offered by `seisfm convert` (16: near lossless)


def convert_segy(src, out, *, bits: int = 8, blockshape=None, overwrite: bool = False, progress=None) -> Path:
    """SEG-Y -> .sgz through seismic-zfp's ``SegyConverter``, finished atomically.

    The file is written as ``OUT.sgz.partial.sgz``, checked (its header against its size, and its
    inline/crossline/sample axes against the source's) and only then renamed to ``out``: a failed or
    interrupted run leaves no ``out`` that looks complete, and the source is only read.
    ``blockshape`` (inline, crossline, sample; powers of two, one of them may be -1) sets the shape
    compressed into one 4 KiB disk block; the default (4, 4, -1) reads lines fast, cubic ones
    (e.g. 16,16,16 at 8 bits) read sub-volumes fast. ``progress(done, total)`` gets bytes written.
    """
    from .segy import open_segy

    src, out = Path(src), Path(out)
    if bits not in BITS:
        raise SeisfmError(f"{out}: --bits {bits} not offered; use one of {', '.join(map(str, BITS))}")
    if blockshape is not None:
        blockshape = tuple(int(b) for b in blockshape)
        if len(blockshape) != 3 or any(b != -1 and (b < 1 or b & (b - 1)) for b in blockshape) or blockshape.count(-1) > 1:
            raise SeisfmError(f"{out}: blockshape {blockshape} must be three powers of two (one may be -1)")
        fixed = [b for b in blockshape if b != -1]
        if -1 not in blockshape and math.prod(fixed) * bits != 8 * BLOCK or math.prod(fixed) * bits > 8 * BLOCK:
            raise SeisfmError(
                f"{out}: blockshape {blockshape} at {bits} bits is not one {BLOCK}-byte disk block "
                f"(inline x crossline x samples x bits must be {8 * BLOCK}; put -1 for one axis)"
            )
    if src.suffix.lower() not in (".sgy", ".segy"):
        raise SeisfmError(f"{src}: not a SEG-Y file name (.sgy, .segy); `seisfm convert` reads SEG-Y")
    if out.suffix.lower() != ".sgz":
        raise SeisfmError(f"{out}: the output must be named .sgz")
    if src.resolve() == out.resolve():
        raise SeisfmError(f"{out}: is the source itself")
    if out.exists() and not overwrite:
        raise SeisfmError(f"{out}: already exists; remove it or pass --overwrite")
    if not src.is_file():  # what open_cube says
        raise SeisfmError(f"{src}: is a directory, not a seismic file" if src.is_dir() else f"{src}: no such file")
    with open_segy(src) as cube:  # our checks first: a damaged SEG-Y is one clear line, never a crash in seismic-zfp
        geometry = cube.geometry
        if geometry.kind == "2d" and 1 not in geometry.shape[:2]:
            raise SeisfmError(f"{src}: irregular 2-D geometry; seismic-zfp needs a line or a cube")
    out = prepare_output(out)
    with atomic_output(out) as tmp:
        _convert(src, tmp, out, geometry, bits, blockshape, progress)
    return out


def _convert(src, tmp, out, geometry, bits, blockshape, progress) -> None:
    """``convert_segy`` into the temporary file ``tmp``: converted, then checked."""
    import contextlib
    import io

    from seismic_zfp.conversion import SegyConverter

    done = threading.Event()
    _catch_thread_failures()

    def watch(total):
        while not done.wait(0.2):
            if tmp.exists():
                progress(min(tmp.stat().st_size, total), total)

    try:
        with contextlib.redirect_stdout(io.StringIO()), _CONVERTING:  # seismic-zfp prints its own banner and memory notes
            converter = SegyConverter(str(src))
            total = converter.get_output_size(bits_per_voxel=bits, blockshape=blockshape)
            check_free_space(out, total, "the .sgz")
            watcher = threading.Thread(target=watch, args=(total,), daemon=True) if progress else None
            if watcher:
                watcher.start()
            _THREAD_ERRORS.clear()
            converter.run(str(tmp), bits_per_voxel=bits, blockshape=blockshape)
            if _THREAD_ERRORS:  # its writer or compressor thread failed (disk full): the file is incomplete
                raise _THREAD_ERRORS[0]
    except BaseException as exc:
        done.set()
        if isinstance(exc, SeisfmError):
            raise
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt: nothing left behind
        if isinstance(exc, OSError) and exc.errno is not None:  # disk full, read-only: about the output, not the source
            raise write_failed(out, exc) from None
        raise SeisfmError(
            f"{src}: seismic-zfp could not convert it: {' '.join(str(exc).split()) or exc.__class__.__name__}"
        ) from None
    finally:
        done.set()
    with open_sgz(tmp) as written:
        _same_axes(src, geometry, written.geometry)
    if progress:
        progress(tmp.stat().st_size, max(total, tmp.stat().st_size))


# seismic-zfp writes on a daemon thread; when that write fails (a full disk) the thread dies and the
# main thread waits on its queue forever. Its writer and compressor are replaced by versions that keep
# taking work from the queue after a failure (so the conversion returns) and record the error, which
# convert_segy raises. One conversion at a time per process, so the record is unambiguous.
_CONVERTING = threading.Lock()
_THREAD_ERRORS: list = []


def _catch_thread_failures() -> None:
    from seismic_zfp import conversion_utils as cu

    if getattr(cu, "_seisfm_safe", False) or not (hasattr(cu, "writer") and hasattr(cu, "compressor")):
        return

    def writer(queue, out_filehandle, header):
        try:
            out_filehandle.write(header)
        except Exception as exc:  # noqa: BLE001 - recorded, raised by convert_segy
            _THREAD_ERRORS.append(exc)
        while True:
            compressed = queue.get()
            try:
                if not _THREAD_ERRORS:
                    out_filehandle.write(compressed)
            except Exception as exc:  # noqa: BLE001
                _THREAD_ERRORS.append(exc)
            finally:
                queue.task_done()

    def compressor(queue_in, queue_out, bits_per_voxel):
        import zfpy

        def refuse(*args, **kw):  # the reading thread's next put stops the conversion early
            raise _THREAD_ERRORS[0]

        while True:
            buffer = queue_in.get()
            try:
                if not _THREAD_ERRORS:
                    queue_out.put(zfpy.compress_numpy(buffer, rate=bits_per_voxel, write_header=False))
            except Exception as exc:  # noqa: BLE001
                _THREAD_ERRORS.append(exc)
            finally:
                if _THREAD_ERRORS:
                    queue_in.put = refuse
                queue_in.task_done()

    cu.writer, cu.compressor, cu._seisfm_safe = writer, compressor, True


def _same_axes(src, a: Geometry, b: Geometry) -> None:
    """The converted file's inline, crossline and sample axes must be the source's."""
    for name in ("ilines", "xlines", "samples"):
        x, y = np.asarray(getattr(a, name), np.float64), np.asarray(getattr(b, name), np.float64)
        if a.kind == "2d" and name != "samples":
            continue  # a 2-D .sgz numbers its traces 1..n
        if x.shape != y.shape or not np.allclose(x, y):
            raise SeisfmError(f"{src}: the converted file's {name} differ from the source's; nothing written")
