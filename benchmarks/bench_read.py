"""Random sub-volume reads from SEG-Y against .sgz: the access pattern of extraction and pretraining.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_read.py [--shape 192,192,384] [--window 64] [--reads 40]

A synthetic cube is written as SEG-Y (the project's writer, IEEE float, inline sorted) and converted
with ``seisfm convert``'s function at 8 bits per voxel, with seismic-zfp's default block shape
(4, 4, -1: fast lines) and with cubic 16^3 blocks. Then ``--reads`` windows of ``--window``^3 samples
at the same random positions are read from each through ``open_cube`` (what extraction and the
pretraining data loader call), in three passes:

- warm: the file in the page cache; the time (wall and CPU) per read is decoding and access only
  (SEG-Y is memory-mapped IEEE float, a copy; .sgz is ZFP decompression);
- cold: the file's pages dropped before every read (``MADV_DONTNEED`` on this process's mappings of
  it, then ``posix_fadvise(DONTNEED)``; that file only); timed, and the bytes storage delivered for the
  read counted as the file's pages resident in the page cache after it (``mincore``; none are before).
  That includes the kernel's readahead as set here (``read_ahead_kb``: 8 MiB on the development VM);
- cold, readahead off: the same with ``MADV_RANDOM`` on every mapping of the file in this process
  (segyio's) and ``POSIX_FADV_RANDOM`` on every open descriptor (seismic-zfp's): the pages the read
  itself touches, rounded up to what the kernel reads at once; the least any storage must deliver.

Page residency is used because it sees memory-mapped reads (segyio), which syscall counters (``rchar``)
miss; ``/proc/self/io`` ``read_bytes`` is printed beside it as a check. On this VM the "disk" is backed
by the host's cache, so cold timings do not show slow storage; the bytes do, independently of it.
Projection, a model built on the measured bytes, not a measurement: on storage of bandwidth B one read
takes ``bytes / B + warm CPU time`` (no overlap of I/O with decoding, no per-request latency, one read
at a time), printed as reads per second for B in ``BANDWIDTHS`` for the bytes of both cold passes. CPU
time (all threads) stands for the decoding cost because wall time on this shared machine is mostly
waiting for a core; it overstates the wall time of seismic-zfp's threaded reads. Reads/s, MB/s of
float32 delivered, bytes and projections come with the ratio against SEG-Y in the same run; file sizes
and the SNR of each .sgz too. Prints JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_seisfm.cube import Geometry
from napari_seisfm.io import open_cube
from napari_seisfm.io.segy import write_segy
from napari_seisfm.io.sgz import convert_segy
from napari_seisfm.synthetic import make_survey

BANDWIDTHS = {"100 MB/s (network share)": 100e6, "500 MB/s (SATA SSD)": 500e6, "2 GB/s (NVMe)": 2e9}
PAGE = mmap.PAGESIZE
MODES = ("warm", "cold", "cold, readahead off")
MADV_RANDOM, MADV_DONTNEED = 1, 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _mappings(path: Path):
    """(start, length) of this process's memory mappings of the file (segyio maps the SEG-Y)."""
    real = os.path.realpath(path)
    with open("/proc/self/maps") as f:
        for line in f:
            if line.rstrip("\n").endswith(" " + real):
                a, b = (int(x, 16) for x in line.split()[0].split("-"))
                yield a, b - a


def _madvise(path: Path, advice: int) -> None:
    for a, n in list(_mappings(path)):
        if _libc.madvise(a, n, advice) != 0:
            raise OSError(ctypes.get_errno(), "madvise")


def evict(path: Path) -> None:
    """Drop this file's pages from the page cache (this file only).

    posix_fadvise(DONTNEED) skips pages mapped into a process, and segyio maps the whole SEG-Y and
    touches every trace header when it opens it: without MADV_DONTNEED on those mappings first, the
    SEG-Y stays in the cache (what this benchmark's earlier "cold" SEG-Y pass measured).
    """
    _madvise(path, MADV_DONTNEED)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_bytes(path: Path) -> int:
    """Bytes of the file in the page cache: mincore on a fresh mapping, which itself touches no page."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            vec = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)
    return int((np.frombuffer(vec, np.uint8) & 1).sum()) * PAGE


def settled_resident_bytes(path: Path) -> int:
    """Resident bytes once asynchronous readahead has landed (two equal counts 10 ms apart, at most 1 s)."""
    last = resident_bytes(path)
    for _ in range(100):
        time.sleep(0.01)
        now = resident_bytes(path)
        if now == last:
            break
        last = now
    return last


def readahead_off(path: Path) -> None:
    """MADV_RANDOM on this process's mappings of the file, POSIX_FADV_RANDOM on its open descriptors."""
    real = os.path.realpath(path)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == real:
                os.posix_fadvise(int(fd), 0, 0, os.POSIX_FADV_RANDOM)
        except OSError:
            pass  # the descriptor of the listing itself, closed by now
    _madvise(path, MADV_RANDOM)


def io_read_bytes() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("read_bytes:")).split()[1])


def read_pass(path: Path, positions, window: int, mode: str) -> dict:
    """One pass of reads: mode "warm", "cold" or "cold, readahead off"."""
    with open_cube(path) as cube:
        cube[0:1, 0:1, 0:1]  # open costs out of the timing
        if mode == "cold, readahead off":
            readahead_off(path)
        dt, cpu, total, fetched, io_bytes, left_max = 0.0, 0.0, 0, [], 0, 0
        for a, b, c in positions:
            if mode != "warm":
                evict(path)
                left = settled_resident_bytes(path)
                left_max = max(left_max, left)
                io0 = io_read_bytes()
            t0, c0 = time.perf_counter(), time.process_time()
            total += np.asarray(cube[a : a + window, b : b + window, c : c + window]).size
            dt += time.perf_counter() - t0
            cpu += time.process_time() - c0
            if mode != "warm":
                fetched.append(settled_resident_bytes(path) - left)
                io_bytes += io_read_bytes() - io0
    n = len(positions)
    row = {"reads_per_s": n / dt, "MB_per_s": total * 4 / dt / 1e6, "ms_per_read": 1e3 * dt / n, "cpu_ms_per_read": 1e3 * cpu / n}
    if fetched:
        row["fetched_MB_per_read"] = float(np.mean(fetched)) / 1e6
        row["fetched_MB_per_read_min_max"] = [min(fetched) / 1e6, max(fetched) / 1e6]
        row["proc_io_read_bytes_MB_per_read"] = io_bytes / n / 1e6
        row["resident_after_evict_MB_max"] = left_max / 1e6  # ~0: the eviction worked
    return row


def _read_ahead_kb() -> dict:
    """The readahead of each block device (the one holding the temporary folder sets the cold pass's)."""
    out = {}
    for d in Path("/sys/block").glob("*"):
        try:
            if not d.name.startswith(("loop", "zram", "ram")):
                out[d.name] = int((d / "queue" / "read_ahead_kb").read_text())
        except OSError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="192,192,384")
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--reads", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    w = args.window
    s = make_survey(shape, seed=args.seed)
    data = s.amplitude.astype(np.float32)
    rng = np.random.default_rng(args.seed)
    positions = [tuple(int(rng.integers(0, n - w + 1)) for n in shape) for _ in range(args.reads)]
    report = {
        "cube": list(shape),
        "window": w,
        "reads": args.reads,
        "page_bytes": PAGE,
        "read_ahead_kb": _read_ahead_kb(),
        "load_average_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        segy = write_segy(tmp / "cube.sgy", data, Geometry.regular(shape))
        files = {"segy": segy}
        for name, blockshape in (("sgz 8 bit, blocks 4x4x256 (default)", None), ("sgz 8 bit, blocks 16x16x16", (16, 16, 16))):
            t0 = time.perf_counter()
            files[name] = convert_segy(segy, tmp / f"{len(files)}.sgz", bits=8, blockshape=blockshape)
            report[f"convert_s {name}"] = time.perf_counter() - t0
        rows = {}
        for mode in MODES:
            for name, path in files.items():
                rows[f"{name}, {mode}"] = read_pass(path, positions, w, mode)
        for name, path in files.items():
            r = rows[f"{name}, warm"]
            r["file_MB"] = path.stat().st_size / 1e6
            if name != "segy":
                with open_cube(path) as cube:
                    y = cube.read()
                r["snr_db"] = float(10 * np.log10(np.mean(data**2) / np.mean((data - y) ** 2)))
            for mode in ("cold", "cold, readahead off"):
                c = rows[f"{name}, {mode}"]
                c["projected_reads_per_s"] = {
                    bw: 1 / (c["fetched_MB_per_read"] * 1e6 / bps + r["cpu_ms_per_read"] / 1e3) for bw, bps in BANDWIDTHS.items()
                }
        for mode in MODES:
            base = rows[f"segy, {mode}"]
            for name in files:
                r = rows[f"{name}, {mode}"]
                r["reads_vs_segy"] = r["reads_per_s"] / base["reads_per_s"]
                if "fetched_MB_per_read" in r:
                    r["fetched_vs_segy"] = r["fetched_MB_per_read"] / base["fetched_MB_per_read"]
                    r["projected_vs_segy"] = {
                        bw: v / base["projected_reads_per_s"][bw] for bw, v in r["projected_reads_per_s"].items()
                    }
        report["results"] = rows
    report["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
