"""Damaged .sgz files: a clean SeisfmError or the original data, never a crash, hang or huge allocation.

seismic-zfp trusts its header, so ``io.sgz.check_header`` validates it against the file size first.
The property test mutates header bytes and cuts files at random offsets (seeded); every case runs in
a subprocess under an address-space cap so a regression fails the test instead of eating the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_seisfm import cli
from napari_seisfm.errors import SeisfmError
from napari_seisfm.io import open_cube

pytestmark = pytest.mark.headless  # runs with only the core installed (.ci/run's second venv)

FILES = ("small-dec_8bit.sgz", "small-irregular.sgz", "small_1bit.sgz", "small_2bit-64x64.sgz", "small-2d.sgz")
MEMORY_CAP = 3 * 2**30  # address space of a worker: imports take ~1.5 GiB of it, a 17.8 GB list would not fit
WORKER = textwrap.dedent("""
    import json, resource, signal, sys, traceback
    import numpy as np
    resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
    from napari_seisfm.io import open_cube
    from napari_seisfm.errors import SeisfmError

    def hang(*_):
        raise TimeoutError("hang")

    signal.signal(signal.SIGALRM, hang)
    cases = json.load(open(sys.argv[1]))
    out = []
    for case in cases:
        signal.alarm(20)
        try:
            with open_cube(case["path"]) as cube:
                data = cube.read()
            ref = np.load(case["ref"])
            ok = data.shape == ref.shape and np.array_equal(data, ref)
            out.append({{"outcome": "equal" if ok else "wrong", "detail": str(data.shape)}})
        except SeisfmError as exc:
            out.append({{"outcome": "error", "detail": str(exc)}})
        except BaseException as exc:
            out.append({{"outcome": "crash", "detail": traceback.format_exc(limit=3)}})
        finally:
            signal.alarm(0)
    json.dump(out, open(sys.argv[2], "w"))
""").format(cap=MEMORY_CAP)


def _run_capped(cases, tmp_path):
    """Open each case in one capped worker process; a hang or runaway memory fails the test."""
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path / "cases.json"), str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "out.json").read_text())


def _mutants(src, ref, tmp_path, rng, n_flip, n_cut):
    raw = src.read_bytes()
    n_header = int.from_bytes(raw[:4], "little") * 4096
    cases = []
    for k in range(n_flip):
        b = bytearray(raw)
        # mostly the structural fields (first 256 bytes), some anywhere in the header blocks
        pos = int(rng.integers(0, 256)) if k % 3 else int(rng.integers(0, n_header))
        b[pos] = int(rng.integers(0, 256)) if k % 2 else b[pos] ^ (1 << int(rng.integers(0, 8)))
        p = tmp_path / f"{src.stem}-flip{k}.sgz"
        p.write_bytes(bytes(b))
        cases.append({"path": str(p), "ref": str(ref), "what": f"byte {pos} -> {b[pos]}"})
    for k in range(n_cut):
        cut = int(rng.integers(0, len(raw)))
        p = tmp_path / f"{src.stem}-cut{k}.sgz"
        p.write_bytes(raw[:cut])
        cases.append({"path": str(p), "ref": str(ref), "what": f"cut at {cut} of {len(raw)}"})
    return cases


def test_damaged_sgz_headers_and_cuts_fail_cleanly(shared_data, tmp_path):
    rng = np.random.default_rng(20261202)
    cases = []
    for name in FILES:
        src = shared_data / "sgz-test" / name
        with open_cube(src) as cube:
            ref = tmp_path / f"{src.stem}.ref.npy"
            np.save(ref, cube.read())
        cases += _mutants(src, ref, tmp_path, rng, n_flip=50, n_cut=14)
    results = _run_capped(cases, tmp_path)
    outcomes = [r["outcome"] for r in results]
    bad = [(c["what"], c["path"], r) for c, r in zip(cases, results) if r["outcome"] not in ("error", "equal")]
    assert not bad, bad[:5]
    assert len(results) == len(cases) >= 300
    assert outcomes.count("error") > 100 and outcomes.count("equal") > 10  # both kinds really happen
    assert all(r["detail"].count("\n") == 0 for r in results if r["outcome"] == "error")


def _patched(src, tmp_path, name, **fields):
    b = bytearray(src.read_bytes())
    for offset, value in fields.values():
        b[offset : offset + 4] = int(value).to_bytes(4, "little")
    p = tmp_path / name
    p.write_bytes(bytes(b))
    return p


@pytest.mark.parametrize("field", [(12, 2_000_000_000), (8, 4_000_000_000), (12, 1000)])
def test_absurd_line_counts_are_refused_before_seismic_zfp_allocates(shared_data, tmp_path, field):
    p = _patched(shared_data / "sgz-test" / "small-dec_8bit.sgz", tmp_path, "absurd.sgz", lines=field)
    results = _run_capped([{"path": str(p), "ref": str(p)}], tmp_path)
    assert results[0]["outcome"] == "error", results
    assert "inlines" in results[0]["detail"] or "blocks" in results[0]["detail"]


def test_truncated_and_inconsistent_block_counts(shared_data, tmp_path, capsys):
    src = shared_data / "sgz-test" / "small-irregular.sgz"
    raw = src.read_bytes()
    third = tmp_path / "third-cut.sgz"
    third.write_bytes(raw[: len(raw) * 2 // 3])
    fewer = _patched(src, tmp_path, "fewer-header-blocks.sgz", blocks=(0, 1))
    more_data = _patched(src, tmp_path, "more-data.sgz", data=(56, 5))
    for p in (third, fewer, more_data):
        with pytest.raises(SeisfmError, match=p.name):
            open_cube(p)
        assert cli.main(["info", str(p)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("seisfm: error:") and err.count("\n") == 1


def test_zero_samples_is_a_one_line_error(shared_data, tmp_path, capsys):
    p = _patched(shared_data / "sgz-test" / "small-dec_8bit.sgz", tmp_path, "zero.sgz", samples=(4, 0))
    assert cli.main(["info", str(p)]) == 2
    assert "0 samples" in capsys.readouterr().err


@pytest.mark.extra("napari")
def test_napari_reader_refuses_a_damaged_sgz(shared_data, tmp_path, reader_messages):
    from conftest import refused_with

    from napari_seisfm.plugin import reader as _reader

    p = tmp_path / "cut.sgz"
    p.write_bytes((shared_data / "sgz-test" / "small-2d.sgz").read_bytes()[:9000])
    assert "cut.sgz" in refused_with(_reader.get_reader(str(p)), p, reader_messages)


def test_intact_sgz_files_still_open(shared_data):
    for name in FILES:
        with open_cube(shared_data / "sgz-test" / name) as cube:
            assert np.isfinite(cube.read()).all()


def test_own_sgz_files_open_with_both_header_array_widths(tmp_path):
    from seismic_zfp.conversion import NumpyConverter
    from seismic_zfp.read import SgzReader

    from napari_seisfm.cube import Geometry
    from napari_seisfm.io.sgz import write_sgz

    data = np.random.default_rng(1).normal(size=(16, 12, 48)).astype(np.float32)
    geometry = Geometry.regular(data.shape, first_inline=100)
    write_sgz(tmp_path / "new.sgz", data, geometry)  # int32 header arrays, as seismic-zfp reads them
    reader = SgzReader(str(tmp_path / "new.sgz"))
    assert np.array_equal(reader.get_tracefield_values(189)[:, 0], geometry.ilines)
    reader.close()
    # files from the earlier write_sgz: NumpyConverter stored int64 header arrays (a longer tail)
    NumpyConverter(
        data, ilines=np.asarray(geometry.ilines, np.int64), xlines=np.asarray(geometry.xlines, np.int64), samples=geometry.samples
    ).run(str(tmp_path / "old.sgz"), bits_per_voxel=8)
    for name in ("new.sgz", "old.sgz"):
        with open_cube(tmp_path / name) as c:
            assert c.shape == data.shape and np.allclose(c.read(), data, atol=0.2)
